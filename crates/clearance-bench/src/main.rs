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

mod batch_figures;
mod init_figures;
mod read_figures;
mod write_figures;

use anyhow::Context;
use clap::{Parser, Subcommand};
use clearance_loader::generate::Generator;
use read_figures::ColdSearch;
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

const BENCH_DB: &str = "clearance_bench";
/// About 100K rows of one currency on the 1M-row ledger.
const BATCH_FILTER: &str = r#"{"treaty_ids":["TR-0002"],"period_from":"2021-01","period_to":"2024-07","currency":"EUR","status":"open"}"#;
/// The heavy treaty's USD rows on the large ledger.
const BATCH_LARGE_FILTER: &str = r#"{"treaty_ids":["TR-0001"],"period_from":"2021-01","period_to":"2025-12","currency":"USD","status":"open"}"#;
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
    /// Rows of the second ledger whose heaviest treaty (32%) gives the
    /// 1M-row search; 0 skips it.
    #[arg(long, default_value_t = 3_200_000)]
    large_rows: u64,
    #[arg(long, default_value_t = 300)]
    warm_reads: u32,
    /// Rounds of 16 concurrent 1,000-row clears (then one round one at a time).
    #[arg(long, default_value_t = 3)]
    clear_rounds: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// One cold search, reported as JSON (run as a child to measure its RSS).
    SearchOnce {
        #[arg(long)]
        table: String,
        #[arg(long)]
        treaty: String,
        #[arg(long)]
        operator: String,
    },
}

#[derive(Serialize)]
struct ReadResults {
    treaty: String,
    rows: u64,
    cold_searches: Vec<ColdSearch>,
    cold_median: ColdSearch,
    warm_page_p50_ms: f64,
    warm_page_p99_ms: f64,
    naive_all_pages_ms: f64,
    naive_page_median_ms: f64,
    copy_to_stdout_ms: f64,
    copy_to_stdout_bytes: u64,
    large: Option<ColdSearch>,
    clear_100k_ms: f64,
    clear_100k_rows: u64,
    clear_retry_ms: f64,
    clear_retry_rows_changed: u64,
    sync_clears: write_figures::SyncClears,
    batch: batch_figures::BatchFigure,
    batch_large: Option<batch_figures::BatchFigure>,
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

fn median_cold(runs: &[ColdSearch]) -> ColdSearch {
    let m = |f: fn(&ColdSearch) -> f64| median(runs.iter().map(f).collect());
    ColdSearch {
        rows: runs.first().map_or(0, |r| r.rows),
        pages: runs.first().map_or(0, |r| r.pages),
        sql_ms: m(|r| r.sql_ms),
        encode_ms: m(|r| r.encode_ms),
        store_ms: m(|r| r.store_ms),
        read_encode_wall_ms: m(|r| r.read_encode_wall_ms),
        total_ms: m(|r| r.total_ms),
        peak_rss_kb: runs.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0),
    }
}

async fn read_path(args: &Args, pool: &PgPool) -> anyhow::Result<ReadResults> {
    let treaty = "TR-0003";
    let bench_url = with_database(&args.database_url, BENCH_DB);
    let client = clearance_dynamo::client_from_env().await;
    let table = format!("clearance-bench-{}", std::process::id());
    clearance_dynamo::table::create(&client, &table)
        .await
        .context("creating the bench table (is moto up?)")?;
    let result = async {
        let mut cold_searches = Vec::new();
        for run in 0..3 {
            progress(&format!("cold search {treaty} run {}/3 (child process)", run + 1));
            cold_searches.push(read_figures::cold_search_in_child(
                &bench_url,
                &table,
                treaty,
                &format!("bench-cold-{run}"),
            )?);
        }
        progress(&format!("{} warm page reads", args.warm_reads));
        let service = read_figures::service(&bench_url, &table).await?;
        let warm = read_figures::warm_pages(&service, treaty, args.warm_reads).await?;
        let rows = cold_searches.first().map_or(0, |c| c.rows);
        progress("naive OFFSET/LIMIT pages on the unpartitioned copy");
        let (naive_all_pages_ms, naive_pages) = read_figures::naive_pages(pool, treaty, rows).await?;
        progress("COPY ... TO STDOUT floor");
        let (copy_to_stdout_ms, copy_to_stdout_bytes) = read_figures::copy_floor(pool, treaty).await?;
        progress(&format!(
            "sync clears: {} operators x {} rows on TR-0001, {} rounds",
            write_figures::OPERATORS,
            write_figures::ROWS_PER_CLEAR,
            args.clear_rounds
        ));
        let sync_clears =
            write_figures::sync_clears(&bench_url, &table, "TR-0001", args.clear_rounds).await?;
        progress("one clear of 100K rows in PostgreSQL, then its identical retry");
        let (clear_100k_ms, clear_100k_rows, clear_retry_ms, clear_retry_rows_changed) =
            read_figures::big_clear(pool, "TR-0001", "USD", 100_000).await?;
        progress("a batch job of ~100K rows (TR-0002, EUR, 2021-01..2024-07) end to end");
        let batch = batch_figures::batch_clear(&bench_url, &table, BATCH_FILTER).await?;
        anyhow::Ok(ReadResults {
            treaty: treaty.to_owned(),
            rows,
            cold_median: median_cold(&cold_searches),
            cold_searches,
            warm_page_p50_ms: percentile(&warm, 50.0),
            warm_page_p99_ms: percentile(&warm, 99.0),
            naive_all_pages_ms,
            naive_page_median_ms: median(naive_pages),
            copy_to_stdout_ms,
            copy_to_stdout_bytes,
            large: None,
            clear_100k_ms,
            clear_100k_rows,
            clear_retry_ms,
            clear_retry_rows_changed,
            sync_clears,
            batch,
            batch_large: None,
        })
    }
    .await;
    clearance_dynamo::table::delete(&client, &table).await?;
    result
}

async fn large_search(
    args: &Args,
    server: &PgConnectOptions,
) -> anyhow::Result<(ColdSearch, batch_figures::BatchFigure)> {
    let db = fresh_db(server).await?;
    progress(&format!("large ledger: loading {} rows", args.large_rows));
    clearance_pg::load::load(&db, &mut Generator::new(1).with_rows(args.large_rows)).await?;
    db.close().await;
    let client = clearance_dynamo::client_from_env().await;
    let table = format!("clearance-bench-large-{}", std::process::id());
    clearance_dynamo::table::create(&client, &table).await?;
    progress("cold search of TR-0001 on the large ledger (child process)");
    let url = with_database(&args.database_url, BENCH_DB);
    let result = async {
        let search = read_figures::cold_search_in_child(&url, &table, "TR-0001", "bench-large")?;
        progress("a batch job of the heavy treaty's USD rows on the large ledger");
        let batch = batch_figures::batch_clear(&url, &table, BATCH_LARGE_FILTER).await?;
        anyhow::Ok((search, batch))
    }
    .await;
    clearance_dynamo::table::delete(&client, &table).await?;
    result
}

#[derive(Serialize)]
struct Results {
    date: String,
    machine: String,
    rows: u64,
    lambda_init: Vec<init_figures::InitFigure>,
    load: LoadFigures,
    pruned_read: Vec<ReadFigures>,
    read_path: ReadResults,
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
    if let Some(Command::SearchOnce { table, treaty, operator }) = &args.command {
        return read_figures::search_once(&args.database_url, table, treaty, operator).await;
    }
    anyhow::ensure!(args.rows <= ROWS_MAX, "at most {ROWS_MAX} rows");
    anyhow::ensure!((1..=RUNS_MAX).contains(&args.load_runs) && (1..=RUNS_MAX).contains(&args.query_runs));
    anyhow::ensure!(
        (1..=4).contains(&args.clear_rounds),
        "1 to 4 clear rounds (each operator's period holds ~4,000 open USD rows at 1M)"
    );
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
    let mut read_path = read_path(&args, &pool).await?;
    pool.close().await;
    if args.large_rows > 0 {
        anyhow::ensure!(args.large_rows <= ROWS_MAX, "at most {ROWS_MAX} rows");
        let (search, batch) = large_search(&args, &server).await?;
        read_path.large = Some(search);
        read_path.batch_large = Some(batch);
    }
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
    progress("Lambda init of each release binary (5 starts each)");
    let release_dir =
        std::env::current_exe()?.parent().map(std::path::Path::to_path_buf).context("no exe dir")?;
    let lambda_init = init_figures::lambda_init(&release_dir, 5)?;
    let results = Results {
        date: chrono::Utc::now().to_rfc3339(),
        machine,
        rows: args.rows,
        lambda_init,
        load,
        pruned_read,
        read_path,
    };
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
    let r = &results.read_path;
    let c = &r.cold_median;
    println!(
        "| cold search {} ({} rows), median of 3: SQL wait / encode+compress / store | {:.0} / {:.0} / {:.0} ms; SQL+encode wall {:.0} ms; total {:.0} ms |",
        r.treaty, r.rows, c.sql_ms, c.encode_ms, c.store_ms, c.read_encode_wall_ms, c.total_ms
    );
    println!(
        "| peak RSS of a {}-row search (child process) | {:.1} MB |",
        r.rows,
        c.peak_rss_kb as f64 / 1024.0
    );
    if let Some(l) = &r.large {
        println!(
            "| cold search of {} rows: SQL / encode / store, peak RSS | {:.0} / {:.0} / {:.0} ms, {:.1} MB |",
            l.rows,
            l.sql_ms,
            l.encode_ms,
            l.store_ms,
            l.peak_rss_kb as f64 / 1024.0
        );
    }
    println!(
        "| warm page, server side ({} reads) | p50 {:.2} ms, p99 {:.2} ms |",
        args.warm_reads, r.warm_page_p50_ms, r.warm_page_p99_ms
    );
    println!(
        "| naive OFFSET/LIMIT, all {} pages on the unpartitioned copy | {:.0} ms (median page {:.1} ms); ours SQL+encode is {:.2}x faster |",
        r.rows.div_ceil(1_000), r.naive_all_pages_ms, r.naive_page_median_ms, r.naive_all_pages_ms / c.read_encode_wall_ms
    );
    println!(
        "| COPY ... TO STDOUT of the same rows (floor) | {:.0} ms ({:.1} MB); ours SQL+encode is {:.2}x the floor |",
        r.copy_to_stdout_ms, r.copy_to_stdout_bytes as f64 / 1e6, c.read_encode_wall_ms / r.copy_to_stdout_ms
    );
    println!(
        "| one clear of {} rows in PostgreSQL (guard + ledger + journal, one transaction); identical retry | {:.0} ms; retry {:.0} ms, {} rows changed |",
        r.clear_100k_rows, r.clear_100k_ms, r.clear_retry_ms, r.clear_retry_rows_changed
    );
    let s = &r.sync_clears;
    println!(
        "| sync clear of {} rows, {} concurrent operators on one treaty ({} clears, through the router) | p50 {:.0} ms, p99 {:.0} ms; {} refused; split p50: snapshot {:.0} / PostgreSQL {:.0} (p99 {:.0}) / read-back {:.0} ms; one at a time p50 {:.0} ms ({:.0} / {:.0} / {:.0}) |",
        s.rows_per_clear, s.operators, s.clears, s.p50_ms, s.p99_ms, s.refused, s.snapshot_p50_ms, s.ledger_p50_ms, s.ledger_p99_ms, s.read_back_p50_ms, s.single_p50_ms, s.single_split_p50_ms[0], s.single_split_p50_ms[1], s.single_split_p50_ms[2]
    );
    for b in std::iter::once(&r.batch).chain(r.batch_large.as_ref()) {
        println!(
            "| batch clear of {} rows ({} chunks), end to end: accepted (202) / workflow / total; PostgreSQL time (reserve + finalize) | {:.0} / {:.0} / {:.0} ms; DB {:.0} ms ({:.0} + {:.0}) |",
            b.rows, b.chunks, b.accept_ms, b.run_ms, b.end_to_end_ms, b.db_ms, b.reserve_ms, b.finalize_ms
        );
    }
    for f in &results.lambda_init {
        println!(
            "| Lambda init of {} (release, {:.1} MB binary; start to first Runtime API call, median of 5) | {:.1} ms |",
            f.function,
            f.binary_bytes as f64 / 1e6,
            f.init_median_ms
        );
    }
    eprintln!("bench: wrote {}", args.out.display());
    Ok(())
}
