//! PostgreSQL adapter: connection pools, the embedded migrations, the bulk
//! loader and the queries on the partitioned ledger.

pub mod audit;
pub mod batch;
pub mod clear;
pub mod closes;
pub mod load;
pub(crate) mod outbox;
pub mod partitions;
pub mod read;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The schema, embedded at build time from `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The role the services connect as (see the application-role migration).
pub const APP_ROLE: &str = "clearance_app";

/// The read-only role the read path connects as (see the reader-role migration).
pub const READER_ROLE: &str = "clearance_reader";

/// Limits of one pool. A Lambda instance serves one request at a time, so a
/// small pool suffices there; the local server and the loader use more.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    pub connections_max: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            connections_max: 8,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// Opens a pool on `url` with explicit limits; every connection carries the
/// statement timeout, so no query can run unbounded.
///
/// # Errors
/// When the URL does not parse or the first connection cannot be made.
pub async fn connect(url: &str, limits: PoolLimits) -> anyhow::Result<PgPool> {
    open(parse(url, limits)?, limits).await
}

/// [`connect`] as `role` on the server and database of `url` (trust or
/// peer authentication: what the local stack and the benchmark use to run
/// each path as the role it has in AWS).
///
/// # Errors
/// When the URL does not parse or the first connection cannot be made.
pub async fn connect_as(url: &str, role: &str, limits: PoolLimits) -> anyhow::Result<PgPool> {
    open(parse(url, limits)?.username(role), limits).await
}

fn parse(url: &str, limits: PoolLimits) -> anyhow::Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url).context("not a PostgreSQL URL")?;
    if let Some(path) = ssl_root_cert(url) {
        anyhow::ensure!(
            std::path::Path::new(&path).is_file(),
            "sslrootcert {path} is not a readable file (the CA bundle TLS verifies the server with)"
        );
    }
    Ok(session_options(options, limits))
}

/// The `sslrootcert` of a URL, if it names one.
fn ssl_root_cert(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let path =
        url.query_pairs().find(|(k, _)| matches!(k.as_ref(), "sslrootcert" | "ssl-root-cert" | "ssl-ca"))?.1;
    Some(path.into_owned())
}

/// Refuses a URL whose connections could go in clear: in AWS the password
/// and the ledger travel only over TLS (`sslmode=require` at least;
/// `verify-full` with the RDS CA bundle is what the template sets).
///
/// # Errors
/// When the URL does not parse or its `sslmode` is not `require`,
/// `verify-ca` or `verify-full`.
pub fn require_tls(url: &str) -> anyhow::Result<()> {
    use sqlx::postgres::PgSslMode;
    let mode = PgConnectOptions::from_str(url).context("not a PostgreSQL URL")?.get_ssl_mode();
    anyhow::ensure!(
        matches!(mode, PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull),
        "sslmode must be require, verify-ca or verify-full (TLS): credentials never travel in clear"
    );
    Ok(())
}

async fn open(options: PgConnectOptions, limits: PoolLimits) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(limits.connections_max)
        .acquire_timeout(limits.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|e| anyhow::anyhow!(describe(&e)))
        .context("cannot connect to PostgreSQL")
}

/// An error's text, saying "TLS" when it came from the TLS layer (a
/// certificate no CA in `sslrootcert` signed, a host name that does not
/// match, a server without TLS), so the log points at `sslmode`,
/// `sslrootcert` or the server's certificate rather than at the network.
pub fn describe(err: &sqlx::Error) -> String {
    if is_tls(err) {
        format!("TLS to PostgreSQL failed (check sslmode, sslrootcert and the server's certificate): {err}")
    } else {
        err.to_string()
    }
}

fn is_tls(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => {
            io.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        }
        _ => false,
    }
}

/// An adapter's error as the ports' [`clearance_core::ports::BackendError`],
/// its whole chain in one line, naming TLS when that is where it failed.
pub(crate) fn backend(err: anyhow::Error) -> clearance_core::ports::BackendError {
    let tls = err.chain().any(|cause| cause.downcast_ref::<sqlx::Error>().is_some_and(is_tls));
    let prefix = if tls {
        "TLS to PostgreSQL failed (check sslmode, sslrootcert and the server's certificate): "
    } else {
        ""
    };
    clearance_core::ports::BackendError::new(format!("{prefix}{err:#}"))
}

/// The session settings of every connection the services and the loader make:
///
/// - `statement_timeout`: no query runs unbounded;
/// - `plan_cache_mode = force_custom_plan`: every execution of a prepared
///   statement is planned with its values, so the hash sub-partitions of
///   `transactions` are pruned to the treaty's leaf. A generic plan (which
///   PostgreSQL may pick after five executions, when it looks no costlier)
///   prunes `treaty_id = ANY($1)` only on the year range at run time and
///   scans all 8 hash leaves of each year (seen with `EXPLAIN ANALYZE` under
///   `force_generic_plan`); this setting rules that out instead of relying
///   on the cost comparison.
pub fn session_options(options: PgConnectOptions, limits: PoolLimits) -> PgConnectOptions {
    options.options([
        ("statement_timeout", format!("{}", limits.statement_timeout.as_millis())),
        ("plan_cache_mode", "force_custom_plan".to_owned()),
    ])
}

/// Creates the database named in `url` when it does not exist yet.
///
/// # Errors
/// When the server cannot be reached or refuses.
pub async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    use sqlx::migrate::MigrateDatabase;
    if !sqlx::Postgres::database_exists(url).await.context("checking whether the database exists")? {
        sqlx::Postgres::create_database(url).await.context("creating the database")?;
    }
    Ok(())
}

/// A pool that connects on first use: what a Lambda builds at start-up, so
/// that init never waits on the database. `sslmode` (and `sslrootcert`)
/// come from the URL, as libpq reads them.
///
/// # Errors
/// When the URL does not parse or names a CA bundle that is not there.
pub fn connect_lazy(url: &str, limits: PoolLimits) -> anyhow::Result<PgPool> {
    let options = parse(url, limits)?;
    Ok(PgPoolOptions::new()
        .max_connections(limits.connections_max)
        .acquire_timeout(limits.acquire_timeout)
        .connect_lazy_with(options))
}

/// Applies every pending migration.
///
/// # Errors
/// When a migration fails or an applied one was changed since.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("applying migrations")
}
