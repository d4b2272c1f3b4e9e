//! `clearance-loader`: schema migrations, generated seed data, upstream CSV
//! loads and a summary of what the ledger holds. Connects with DATABASE_URL
//! as the schema owner (it creates partitions); the services never do.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use clearance_loader::csv_source::{write_csv, CsvSource};
use clearance_loader::generate::Generator;
use clearance_pg::load::{load, LoadError, LoadReport};
use clearance_pg::PoolLimits;

/// Most rows one `seed` or `generate-csv` may produce.
const GENERATED_ROWS_MAX: u64 = 20_000_000;

#[derive(Parser)]
#[command(about = "Loads the cash clearance ledger")]
struct Cli {
    /// PostgreSQL URL of the schema owner.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates the database if it is missing, then applies pending migrations.
    Migrate,
    /// Generates N rows from a seed and loads them (idempotent).
    Seed {
        #[arg(long, default_value_t = 500_000)]
        rows: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Loads an upstream CSV file in one transaction (see the README for its columns).
    LoadCsv { path: PathBuf },
    /// Writes N generated rows as an upstream CSV file (no database needed).
    GenerateCsv {
        #[arg(long)]
        rows: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Prints what the ledger holds: rows, treaties, partitions, scope versions.
    Summary,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("clearance-loader: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn loader_limits() -> PoolLimits {
    PoolLimits {
        connections_max: 2,
        statement_timeout: Duration::from_secs(30 * 60),
        ..PoolLimits::default()
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::GenerateCsv { rows, seed, out } = &cli.command {
        anyhow::ensure!(*rows <= GENERATED_ROWS_MAX, "at most {GENERATED_ROWS_MAX} rows");
        let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        write_csv(std::io::BufWriter::new(file), Generator::new(*seed).rows(0..*rows))?;
        println!("wrote {rows} rows to {}", out.display());
        return Ok(());
    }
    if let Command::Migrate = cli.command {
        clearance_pg::create_database_if_missing(&cli.database_url).await?;
    }
    let pool = clearance_pg::connect(&cli.database_url, loader_limits()).await?;
    match cli.command {
        Command::Migrate => {
            clearance_pg::migrate(&pool).await?;
            println!("migrations applied");
        }
        Command::Seed { rows, seed } => {
            anyhow::ensure!(rows <= GENERATED_ROWS_MAX, "at most {GENERATED_ROWS_MAX} rows");
            let started = Instant::now();
            let mut generator = Generator::new(seed).with_rows(rows);
            let report = load(&pool, &mut generator).await.map_err(load_error)?;
            print_report(&report, started.elapsed());
        }
        Command::LoadCsv { path } => {
            let started = Instant::now();
            let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            let mut source = CsvSource::new(std::io::BufReader::new(file));
            let report = load(&pool, &mut source)
                .await
                .map_err(|err| load_error(err).context(format!("loading {}", path.display())))?;
            print_report(&report, started.elapsed());
        }
        Command::Summary => print_summary(&pool).await?,
        Command::GenerateCsv { .. } => {}
    }
    Ok(())
}

fn load_error(err: LoadError) -> anyhow::Error {
    match err {
        LoadError::Record(record) => anyhow::anyhow!("{record}; nothing was loaded"),
        LoadError::Database(db) => db,
    }
}

fn print_report(report: &LoadReport, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "read {} rows, inserted {} new ({} already present) in {:.2} s ({:.0} rows/s); {} treaties got a new scope version; {} year partitions created",
        report.rows_read,
        report.rows_inserted,
        report.rows_read - report.rows_inserted,
        secs,
        report.rows_read as f64 / secs,
        report.treaties.len(),
        report.year_partitions_created,
    );
}

async fn print_summary(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let (rows, treaties, periods_from, periods_to): (i64, i64, Option<String>, Option<String>) =
        sqlx::query_as(
            "SELECT count(*), count(DISTINCT treaty_id),
                to_char(min(accounting_period), 'YYYY-MM'), to_char(max(accounting_period), 'YYYY-MM')
         FROM transactions",
        )
        .fetch_one(pool)
        .await?;
    println!(
        "ledger: {rows} transactions over {treaties} treaties, periods {} to {}",
        periods_from.as_deref().unwrap_or("-"),
        periods_to.as_deref().unwrap_or("-")
    );
    let heaviest: Vec<(String, i64, i64, i64, String, i64)> = sqlx::query_as(
        "SELECT t.treaty_id, count(*), count(DISTINCT cedent_id), count(DISTINCT accounting_period),
                string_agg(DISTINCT currency, ','), coalesce(max(s.version), 0)
         FROM transactions t LEFT JOIN scope_versions s USING (treaty_id)
         GROUP BY t.treaty_id ORDER BY count(*) DESC LIMIT 5",
    )
    .fetch_all(pool)
    .await?;
    println!("heaviest treaties:");
    for (treaty, n, cedents, periods, currencies, version) in heaviest {
        println!("  {treaty}: {n} rows, {cedents} cedents, {periods} periods, {currencies}, scope version {version}");
    }
    let leaves = clearance_pg::partitions::leaves(pool).await?;
    let in_default = leaves.iter().find(|l| l.name == "transactions_default").map_or(0, |l| l.rows);
    println!("partitions: {} leaves, {in_default} rows in the default partition", leaves.len());
    Ok(())
}
