//! Configuration from the environment, read once at start-up by each binary.

use std::time::Duration;

/// What the read path needs to run.
#[derive(Debug, Clone)]
pub struct ReadEnv {
    /// PostgreSQL URL of the application role.
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
    /// Reads `CLEARANCE_APP_DATABASE_URL` (or `DATABASE_URL`), `CLEARANCE_TABLE`,
    /// `CLEARANCE_SNAPSHOT_TTL_SECS` (3600), `CLEARANCE_DB_CONNECTIONS_MAX` (2),
    /// `CLEARANCE_STATEMENT_TIMEOUT_MS` (10000).
    ///
    /// # Errors
    /// [`ConfigError`] naming the missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let database_url = var("CLEARANCE_APP_DATABASE_URL").or_else(|_| var("DATABASE_URL"))?;
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
