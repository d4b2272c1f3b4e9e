//! Configuration from the environment, read once at start-up by each binary.

use std::time::Duration;

/// What the read path needs to run.
#[derive(Debug, Clone)]
pub struct ReadEnv {
    /// PostgreSQL URL of the read-only role (`clearance_reader`).
    pub database_url: String,
    /// The DynamoDB table (snapshots, scope mirror).
    pub table: String,
    pub snapshot_ttl_secs: i64,
    pub db_connections_max: u32,
    pub statement_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

fn var(name: &str) -> Result<String, ConfigError> {
    std::env::var(name).map_err(|_| ConfigError(format!("{name} is not set")))
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| ConfigError(format!("{name} is not a number"))),
        Err(_) => Ok(default),
    }
}

impl ReadEnv {
    /// Reads `CLEARANCE_READER_DATABASE_URL` (or `DATABASE_URL`), `CLEARANCE_TABLE`,
    /// `CLEARANCE_SNAPSHOT_TTL_SECS` (3600), `CLEARANCE_DB_CONNECTIONS_MAX` (2),
    /// `CLEARANCE_STATEMENT_TIMEOUT_MS` (10000).
    ///
    /// # Errors
    /// [`ConfigError`] naming the missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let database_url = var("CLEARANCE_READER_DATABASE_URL").or_else(|_| var("DATABASE_URL"))?;
        let snapshot_ttl_secs = number("CLEARANCE_SNAPSHOT_TTL_SECS", 3_600_i64)?;
        if !(60..=86_400).contains(&snapshot_ttl_secs) {
            return Err(ConfigError("CLEARANCE_SNAPSHOT_TTL_SECS must be 60 to 86400".into()));
        }
        Ok(Self {
            database_url,
            table: var("CLEARANCE_TABLE")?,
            snapshot_ttl_secs,
            db_connections_max: number("CLEARANCE_DB_CONNECTIONS_MAX", 2_u32)?,
            statement_timeout: Duration::from_millis(number("CLEARANCE_STATEMENT_TIMEOUT_MS", 10_000_u64)?),
        })
    }
}

/// What the write path needs to run.
#[derive(Debug, Clone)]
pub struct WriteEnv {
    pub database_url: String,
    /// The DynamoDB table (snapshots, scope mirror, idempotency records).
    pub table: String,
    pub db_connections_max: u32,
    pub statement_timeout: Duration,
    /// Largest selection cleared inside the request.
    pub sync_rows_max: usize,
    pub idempotency_ttl_secs: i64,
    pub idempotency_lease_secs: i64,
}

impl WriteEnv {
    /// Reads `CLEARANCE_APP_DATABASE_URL` (or `DATABASE_URL`), `CLEARANCE_TABLE`,
    /// `CLEARANCE_DB_CONNECTIONS_MAX` (2), `CLEARANCE_STATEMENT_TIMEOUT_MS`
    /// (10000), `CLEARANCE_SYNC_ROWS_MAX` (2000), `CLEARANCE_IDEMPOTENCY_TTL_SECS`
    /// (86400, at least that), `CLEARANCE_IDEMPOTENCY_LEASE_SECS` (60).
    ///
    /// # Errors
    /// [`ConfigError`] naming the missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let database_url = var("CLEARANCE_APP_DATABASE_URL").or_else(|_| var("DATABASE_URL"))?;
        let sync_rows_max = number("CLEARANCE_SYNC_ROWS_MAX", clearance_core::write::SYNC_ROWS_MAX_DEFAULT)?;
        if !(1..=100_000).contains(&sync_rows_max) {
            return Err(ConfigError("CLEARANCE_SYNC_ROWS_MAX must be 1 to 100000".into()));
        }
        let idempotency_ttl_secs = number("CLEARANCE_IDEMPOTENCY_TTL_SECS", 86_400_i64)?;
        if !(86_400..=30 * 86_400).contains(&idempotency_ttl_secs) {
            return Err(ConfigError("CLEARANCE_IDEMPOTENCY_TTL_SECS must be 86400 (24 h) to 2592000".into()));
        }
        let idempotency_lease_secs = number("CLEARANCE_IDEMPOTENCY_LEASE_SECS", 60_i64)?;
        if !(1..=900).contains(&idempotency_lease_secs) {
            return Err(ConfigError("CLEARANCE_IDEMPOTENCY_LEASE_SECS must be 1 to 900".into()));
        }
        Ok(Self {
            database_url,
            table: var("CLEARANCE_TABLE")?,
            db_connections_max: number("CLEARANCE_DB_CONNECTIONS_MAX", 2_u32)?,
            statement_timeout: Duration::from_millis(number("CLEARANCE_STATEMENT_TIMEOUT_MS", 10_000_u64)?),
            sync_rows_max,
            idempotency_ttl_secs,
            idempotency_lease_secs,
        })
    }
}
