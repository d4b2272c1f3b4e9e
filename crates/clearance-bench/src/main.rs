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
mod browser_figures;
mod concurrency_run;
mod faults;
mod frozen_figures;
mod grid_figures;
mod init_figures;
mod read_figures;
mod results;
mod write_figures;

use anyhow::Context;
use clap::{Parser, Subcommand};
use clearance_loader::generate::Generator;
use read_figures::ColdSearch;
use results::{LoadFigures, ReadFigures, ReadResults, Results};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

const BENCH_DB: &str = "clearance_bench";
/// About 100K rows of one currency on the 1M-row ledger.
const BATCH_FILTER: &str = r#"{"treaty_ids":["TR-0002"],"period_from":"2021-01","period_to":"2024-07","currency":"EUR","status":"open"}"#;
/// The heavy treaty's USD rows on the large ledger.
const BATCH_LARGE_FILTER: &str = r#"{"treaty_ids":["TR-0001"],"period_from":"2021-01","period_to":"2025-12","currency":"USD","status":"open"}"#;
/// The reliability run's rows: the open USD rows of 2024 of the treaty the
/// read figures searched (8K rows on the 1M-row ledger; the run is after
/// them); operators select from the first page of 1,000 open rows, so
/// their selections overlap.
const CONCURRENCY_FILTER: &str = r#"{"treaty_ids":["TR-0003"],"period_from":"2024-01","period_to":"2024-12","currency":"USD","status":"open"}"#;
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
    /// The README whose table is rewritten from the results.
    #[arg(long, default_value = "README.md")]
    readme: PathBuf,
    /// Rows of the second ledger whose heaviest treaty (32%) gives the
    /// 1M-row search; 0 skips it.
    #[arg(long, default_value_t = 3_200_000)]
    large_rows: u64,
    #[arg(long, default_value_t = 300)]
    warm_reads: u32,
    /// The whole run stops (and drops its database) past this many seconds.
    #[arg(long, default_value_t = 1_200)]
    time_limit_secs: u64,
    /// Rounds of 16 concurrent 1,000-row clears (then one round one at a time).
    #[arg(long, default_value_t = 3)]
    clear_rounds: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Only the reliability run, on the loaded ledger of DATABASE_URL (a
    /// scratch database: it clears and reverses rows), printed as JSON.
    Reliability,
    /// Only the grid's API figures on `treaty` of the loaded ledger of
    /// DATABASE_URL (reads only), printed as JSON.
    Grid {
        #[arg(long, default_value = "TR-0003")]
        treaty: String,
    },
    /// Renders the README table from the results file (`--out`) into README.md.
    Readme {
        #[arg(long, default_value = "README.md")]
        readme: PathBuf,
    },
    /// One cold search, reported as JSON (run as a child to measure its RSS).
    SearchOnce {
        #[arg(long)]
        table: String,
        #[arg(long)]
        treaty: String,
        #[arg(long)]
        operator: String,
        /// Then page 0 of the snapshot sorted by amount (a view).
        #[arg(long)]
        view: bool,
    },
    /// The sync clear figure, reported as JSON (run as a child for its RSS).
    SyncClears {
        #[arg(long)]
        table: String,
        #[arg(long)]
        treaty: String,
        #[arg(long)]
        rounds: usize,
    },
    /// One batch job of the rows `filter` finds, reported as JSON (run as a
    /// child for its RSS).
    BatchClear {
        #[arg(long)]
        table: String,
        #[arg(long)]
        filter: String,
    },
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
        view_ms: None,
    }
}

async fn read_path(
    args: &Args,
    pool: &PgPool,
) -> anyhow::Result<(ReadResults, concurrency_run::ConcurrencyFigures)> {
    let treaty = "TR-0003";
    let bench_url = with_database(&args.database_url, BENCH_DB);
    let client =
        clearance_dynamo::client(&clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await);
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
                false,
            )?);
        }
        progress(&format!("{} warm page reads", args.warm_reads));
        let service = read_figures::service(&bench_url, &table).await?;
        let warm = read_figures::warm_pages(&service, treaty, args.warm_reads).await?;
        let rows = cold_searches.first().map_or(0, |c| c.rows);
        progress(&format!("the grid's API on {treaty}: page bytes, view builds ({}), selection summaries", grid_figures::VIEW_QUERY));
        let grid = grid_figures::run(&bench_url, &table, treaty).await?;
        let browser = match browser_figures::missing() {
            Some(reason) => {
                progress(&format!("the reference grid in Chromium: skipped, {reason}"));
                None
            }
            None => {
                progress(&format!("the reference grid in Chromium on {treaty}: search painted, cached, scroll to page 50"));
                Some(browser_figures::run(&bench_url, &table, treaty).await?)
            }
        };
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
            read_figures::in_child(&bench_url, &["sync-clears", "--table", &table, "--treaty", "TR-0001", "--rounds", &args.clear_rounds.to_string()])?;
        progress("one clear of 100K rows in PostgreSQL, its identical retry, its reversal; the write floor");
        let big_clear = read_figures::big_clear(pool, "TR-0001", "USD", 100_000).await?;
        progress("a batch job of ~100K rows (TR-0002, EUR, 2021-01..2024-07) end to end");
        let batch: batch_figures::BatchFigure =
            read_figures::in_child(&bench_url, &["batch-clear", "--table", &table, "--filter", BATCH_FILTER])?;
        progress(&format!(
            "reliability: {} operators x {} actions (sync, batch, reversal) on {CONCURRENCY_FILTER}, then the audit",
            concurrency_run::OPERATORS,
            concurrency_run::ROUNDS
        ));
        let concurrency = concurrency_run::run(&bench_url, &table, CONCURRENCY_FILTER).await?;
        for violation in &concurrency.violations {
            progress(&format!("  VIOLATION: {violation}"));
        }
        progress(&format!(
            "  {} attempts, {} commits, {} conflicts, {} violations; events {} committed, {} delivered, {} lost",
            concurrency.attempts,
            concurrency.commits,
            concurrency.conflicts,
            concurrency.violations.len(),
            concurrency.faults.events_committed,
            concurrency.faults.events_delivered,
            concurrency.faults.events_lost
        ));
        anyhow::Ok((ReadResults {
            treaty: treaty.to_owned(),
            rows,
            cold_median: median_cold(&cold_searches),
            cold_searches,
            warm_reads: args.warm_reads,
            warm_page_p50_ms: percentile(&warm, 50.0),
            warm_page_p99_ms: percentile(&warm, 99.0),
            naive_all_pages_ms,
            naive_page_median_ms: median(naive_pages),
            copy_to_stdout_ms,
            copy_to_stdout_bytes,
            large: None,
            large_view: None,
            grid: Some(grid),
            browser,
            clear_100k_ms: big_clear.ms,
            clear_100k_rows: big_clear.rows,
            clear_retry_ms: big_clear.retry_ms,
            clear_retry_rows_changed: big_clear.retry_rows_changed,
            clear_100k_reversal_ms: Some(big_clear.reversal_ms),
            write_floor_100k_ms: Some(big_clear.floor_ms),
            sync_clears,
            batch,
            batch_large: None,
        }, concurrency))
    }
    .await;
    clearance_dynamo::table::delete(&client, &table).await?;
    result
}

async fn large_search(
    args: &Args,
    server: &PgConnectOptions,
) -> anyhow::Result<(ColdSearch, ColdSearch, batch_figures::BatchFigure)> {
    let db = fresh_db(server).await?;
    progress(&format!("large ledger: loading {} rows", args.large_rows));
    clearance_pg::load::load(&db, &mut Generator::new(1).with_rows(args.large_rows)).await?;
    db.close().await;
    let client =
        clearance_dynamo::client(&clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await);
    let table = format!("clearance-bench-large-{}", std::process::id());
    clearance_dynamo::table::create(&client, &table).await?;
    progress("cold search of TR-0001 on the large ledger (child process)");
    let url = with_database(&args.database_url, BENCH_DB);
    let result = async {
        let search = read_figures::cold_search_in_child(&url, &table, "TR-0001", "bench-large", false)?;
        progress("the same search by another operator, then page 0 sorted by amount (a view), in one child");
        let view = read_figures::cold_search_in_child(&url, &table, "TR-0001", "bench-large-view", true)?;
        progress("a batch job of the heavy treaty's USD rows on the large ledger");
        let batch: batch_figures::BatchFigure = read_figures::in_child(
            &url,
            &["batch-clear", "--table", &table, "--filter", BATCH_LARGE_FILTER],
        )?;
        anyhow::Ok((search, view, batch))
    }
    .await;
    clearance_dynamo::table::delete(&client, &table).await?;
    result
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
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
    match &args.command {
        Some(Command::SearchOnce { table, treaty, operator, view }) => {
            return read_figures::search_once(&args.database_url, table, treaty, operator, *view).await;
        }
        Some(Command::SyncClears { table, treaty, rounds }) => {
            let figure = write_figures::sync_clears(&args.database_url, table, treaty, *rounds).await?;
            println!("{}", serde_json::to_string(&figure)?);
            return Ok(());
        }
        Some(Command::BatchClear { table, filter }) => {
            let figure = batch_figures::batch_clear(&args.database_url, table, filter).await?;
            println!("{}", serde_json::to_string(&figure)?);
            return Ok(());
        }
        Some(Command::Reliability) => {
            let client = clearance_dynamo::client(
                &clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await,
            );
            let table = format!("clearance-bench-reliability-{}", std::process::id());
            clearance_dynamo::table::create(&client, &table).await?;
            let figures = concurrency_run::run(&args.database_url, &table, CONCURRENCY_FILTER).await;
            clearance_dynamo::table::delete(&client, &table).await?;
            println!("{}", serde_json::to_string_pretty(&figures?)?);
            return Ok(());
        }
        Some(Command::Grid { treaty }) => {
            let client = clearance_dynamo::client(
                &clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await,
            );
            let table = format!("clearance-bench-grid-{}", std::process::id());
            clearance_dynamo::table::create(&client, &table).await?;
            let figures = grid_figures::run(&args.database_url, &table, treaty).await;
            clearance_dynamo::table::delete(&client, &table).await?;
            println!("{}", serde_json::to_string_pretty(&figures?)?);
            return Ok(());
        }
        Some(Command::Readme { readme }) => {
            let results: Results = serde_json::from_str(&std::fs::read_to_string(&args.out)?)
                .with_context(|| format!("reading {}", args.out.display()))?;
            return write_readme(readme, &results);
        }
        None => {}
    }
    let server = PgConnectOptions::from_str(&args.database_url)?;
    let limit = std::time::Duration::from_secs(args.time_limit_secs);
    match tokio::time::timeout(limit, run(&args)).await {
        Ok(result) => result,
        Err(_) => {
            // Tables live in moto's memory; the database is ours to drop.
            drop_db(&server).await?;
            anyhow::bail!(
                "the run passed its time limit of {} s; its database is dropped",
                args.time_limit_secs
            )
        }
    }
}

/// The whole run: loads, figures, clean-up, results file and README table.
async fn run(args: &Args) -> anyhow::Result<()> {
    let run_started = Instant::now();
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
    let (mut read_path, concurrency) = read_path(args, &pool).await?;
    pool.close().await;
    if args.large_rows > 0 {
        anyhow::ensure!(args.large_rows <= ROWS_MAX, "at most {ROWS_MAX} rows");
        let (search, view, batch) = large_search(args, &server).await?;
        read_path.large = Some(search);
        read_path.large_view = Some(view);
        read_path.batch_large = Some(batch);
    }
    progress("time to a 503 under a frozen DynamoDB (a moto of its own, SIGSTOP; 5 of each)");
    let frozen = {
        let url = with_database(&args.database_url, BENCH_DB);
        let pools =
            clearance_local::Pools::connect_as_roles(&url, clearance_pg::PoolLimits::default()).await?;
        let venv_bin = std::env::current_dir()?.join(".dev/venv/bin");
        frozen_figures::measure(pools, &venv_bin, CONCURRENCY_FILTER, 5).await?
    };
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
        run_secs: run_started.elapsed().as_secs_f64(),
        lambda_init,
        load,
        pruned_read,
        read_path,
        concurrency,
        frozen_dependency: Some(frozen),
    };
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)? + "\n")?;

    println!("{}", results::table(&results));
    write_readme(&args.readme, &results)?;
    anyhow::ensure!(
        results.concurrency.violations.is_empty(),
        "the reliability run found {} violations",
        results.concurrency.violations.len()
    );
    eprintln!("bench: wrote {}", args.out.display());
    Ok(())
}

fn write_readme(path: &std::path::Path, results: &Results) -> anyhow::Result<()> {
    let readme = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    std::fs::write(path, results::with_table(&readme, &results::table(results))?)?;
    eprintln!("bench: rewrote the table in {}", path.display());
    Ok(())
}
