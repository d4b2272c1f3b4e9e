//! `clearance-bench`: one run on the local stack, bounded in rows and time,
//! that measures the project's figures and writes them to a JSON file.
//!
//! Ledger figures (this run):
//! - load: rows/s of loading N generated rows with COPY into a fresh ledger
//!   (median of `--load-runs` fresh databases);
//! - pruned read: `EXPLAIN ANALYZE` execution time of the ~100K-row treaty
//!   query on the partitioned ledger against the same query on an
//!   unpartitioned copy of the table (median of `--query-runs`).
//!
//! It works in its own database (`clearance_bench`), dropped at the end.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use clearance_loader::generate::Generator;
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

const BENCH_DB: &str = "clearance_bench";
const ROWS_MAX: u64 = 5_000_000;
const RUNS_MAX: u32 = 21;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Rows generated and loaded.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    #[arg(long, default_value_t = 3)]
    load_runs: u32,
    #[arg(long, default_value_t = 9)]
    query_runs: u32,
    #[arg(long, default_value = "docs/bench/results.json")]
    out: PathBuf,
}

#[derive(Serialize)]
struct Results {
    date: String,
    machine: String,
    rows: u64,
    load: LoadFigures,
    pruned_read: Vec<ReadFigures>,
}

#[derive(Serialize)]
struct LoadFigures {
    runs_secs: Vec<f64>,
    median_secs: f64,
    median_rows_per_sec: f64,
}

#[derive(Serialize)]
struct ReadFigures {
    query: String,
    rows: i64,
    partitioned_median_ms: f64,
    unpartitioned_median_ms: f64,
    leaves_scanned: usize,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn fresh_db(server: &PgConnectOptions) -> anyhow::Result<PgPool> {
    let mut admin = PgConnection::connect_with(&server.clone().database("postgres")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")).execute(&mut admin).await?;
    sqlx::query(&format!("CREATE DATABASE {BENCH_DB}")).execute(&mut admin).await?;
    sqlx::query("CHECKPOINT").execute(&mut admin).await?;
    let url = server.clone().database(BENCH_DB);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(url.options([("statement_timeout", "600000")]))
        .await?;
    clearance_pg::migrate(&pool).await?;
    Ok(pool)
}

async fn drop_db(server: &PgConnectOptions) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect_with(&server.clone().database("postgres")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")).execute(&mut admin).await?;
    Ok(())
}

fn progress(message: &str) {
    eprintln!("bench: {message}");
}

async fn execution_ms(pool: &PgPool, sql: &str) -> anyhow::Result<(f64, usize)> {
    let plan: serde_json::Value =
        sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).fetch_one(pool).await?;
    let ms = plan[0]["Execution Time"].as_f64().context("no Execution Time in the plan")?;
    let text = plan.to_string();
    let leaves = text.matches("\"Relation Name\":\"transactions_y").count();
    Ok((ms, leaves))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.rows <= ROWS_MAX, "at most {ROWS_MAX} rows");
    anyhow::ensure!((1..=RUNS_MAX).contains(&args.load_runs) && (1..=RUNS_MAX).contains(&args.query_runs));
    let server = PgConnectOptions::from_str(&args.database_url)?;

    let mut runs = Vec::new();
    let mut pool = None;
    for run in 1..=args.load_runs {
        let db = fresh_db(&server).await?;
        progress(&format!("load run {run}/{}: {} rows", args.load_runs, args.rows));
        let started = Instant::now();
        let report = clearance_pg::load::load(&db, &mut Generator::new(1).with_rows(args.rows)).await?;
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            report.rows_inserted == args.rows,
            "loaded {} of {}",
            report.rows_inserted,
            args.rows
        );
        progress(&format!("  {secs:.2} s, {:.0} rows/s", args.rows as f64 / secs));
        runs.push(secs);
        pool = Some(db);
    }
    let pool = pool.context("no load run")?;
    let median_secs = median(runs.clone());
    let load =
        LoadFigures { runs_secs: runs, median_secs, median_rows_per_sec: args.rows as f64 / median_secs };

    progress("building the unpartitioned copy");
    sqlx::query("VACUUM ANALYZE transactions").execute(&pool).await?;
    // In arrival order (the generator's index, which source_ref spells), as a
    // ledger fed over time holds its rows; copying the partitions in their
    // physical order would hand the baseline a clustering it never has.
    sqlx::query("CREATE TABLE transactions_flat AS SELECT * FROM transactions ORDER BY source_ref")
        .execute(&pool)
        .await?;
    sqlx::query("ALTER TABLE transactions_flat ADD PRIMARY KEY (treaty_id, accounting_period, id)")
        .execute(&pool)
        .await?;
    sqlx::query("VACUUM ANALYZE transactions_flat").execute(&pool).await?;

    let mut pruned_read = Vec::new();
    for (treaty, from, to) in
        [("TR-0003", "2021-01-01", "2025-12-01"), ("TR-0001", "2024-01-01", "2025-07-01")]
    {
        let filter = format!("treaty_id = '{treaty}' AND accounting_period BETWEEN '{from}' AND '{to}'");
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM transactions WHERE {filter}"))
            .fetch_one(&pool)
            .await?;
        progress(&format!("pruned read {treaty} {from}..{to}: {rows} rows, {} runs each", args.query_runs));
        let mut partitioned = Vec::new();
        let mut flat = Vec::new();
        let mut leaves_scanned = 0;
        for _ in 0..args.query_runs {
            let (ms, leaves) =
                execution_ms(&pool, &format!("SELECT * FROM transactions WHERE {filter}")).await?;
            partitioned.push(ms);
            leaves_scanned = leaves;
            flat.push(
                execution_ms(&pool, &format!("SELECT * FROM transactions_flat WHERE {filter}")).await?.0,
            );
        }
        pruned_read.push(ReadFigures {
            query: format!("{treaty} {from}..{to}"),
            rows,
            partitioned_median_ms: median(partitioned),
            unpartitioned_median_ms: median(flat),
            leaves_scanned,
        });
    }
    pool.close().await;
    drop_db(&server).await?;

    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_owned()))
            .unwrap_or_default()
    );
    let results =
        Results { date: chrono::Utc::now().to_rfc3339(), machine, rows: args.rows, load, pruned_read };
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)? + "\n")?;

    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| load {} generated rows with COPY (median of {}) | {:.2} s, {:.0} rows/s |",
        args.rows, args.load_runs, results.load.median_secs, results.load.median_rows_per_sec
    );
    for r in &results.pruned_read {
        println!(
            "| {} ({} rows): partitioned, {} leaves / unpartitioned (EXPLAIN ANALYZE, median) | {:.1} ms / {:.1} ms ({:.1}x) |",
            r.query,
            r.rows,
            r.leaves_scanned,
            r.partitioned_median_ms,
            r.unpartitioned_median_ms,
            r.unpartitioned_median_ms / r.partitioned_median_ms
        );
    }
    eprintln!("bench: wrote {}", args.out.display());
    Ok(())
}
