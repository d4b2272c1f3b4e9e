//! Configuration from the environment, read once at start-up by each binary.
//! A missing or malformed variable is a [`ConfigError`] naming the variable
//! and the rule it breaks; the Lambda entry reports it to the Runtime API.

use std::time::Duration;

/// A variable that is missing or breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {variable}: {rule}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub rule: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, rule: impl Into<String>) -> Self {
        Self { variable, rule: rule.into() }
    }
}

fn var(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::new(name, "must be set")),
    }
}

/// The URL in the first of `names` that is set, or an error naming the first.
fn database(names: &[&'static str]) -> Result<DatabaseUrl, ConfigError> {
    for name in names {
        if let Ok(url) = var(name) {
            return Ok(DatabaseUrl { variable: name, url });
        }
    }
    Err(ConfigError::new(names[0], "must be set"))
}

/// `name` as a whole number within `range`, `default` when unset.
fn number<T>(name: &'static str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let value = match std::env::var(name) {
        Ok(v) => v.trim().parse().map_err(|_| {
            ConfigError::new(
                name,
                format!("must be a whole number from {} to {}", range.start(), range.end()),
            )
        })?,
        Err(_) => default,
    };
    if !range.contains(&value) {
        return Err(ConfigError::new(name, format!("must be from {} to {}", range.start(), range.end())));
    }
    Ok(value)
}

fn millis(
    name: &'static str,
    default_ms: u64,
    range_ms: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    number(name, default_ms, range_ms).map(Duration::from_millis)
}

/// How long each dependency may take, all well inside the function's own
/// timeout, so that a slow or frozen dependency is a 503 in bounded time and
/// never a request the platform cuts off without our answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The function's own timeout (the template passes it in).
    pub function: Duration,
    /// One attempt of an AWS call (DynamoDB, Step Functions, EventBridge).
    pub aws_attempt: Duration,
    /// One AWS call with its retries.
    pub aws_operation: Duration,
    /// AWS attempts a call makes, the first included.
    pub aws_attempts_max: u32,
    /// Waiting for a PostgreSQL connection (including connecting).
    pub db_acquire: Duration,
    /// One PostgreSQL statement (`statement_timeout`).
    pub db_statement: Duration,
}

impl Timeouts {
    /// Reads `CLEARANCE_FUNCTION_TIMEOUT_SECS` (`function_default_secs`),
    /// `CLEARANCE_AWS_ATTEMPT_TIMEOUT_MS` (1500), `CLEARANCE_AWS_OPERATION_TIMEOUT_MS`
    /// (4000), `CLEARANCE_AWS_ATTEMPTS_MAX` (3), `CLEARANCE_DB_ACQUIRE_TIMEOUT_MS`
    /// (2000) and `CLEARANCE_STATEMENT_TIMEOUT_MS` (10000). The AWS call and
    /// a statement after its acquire must each end within the function's
    /// timeout, with a second to spare for the answer.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable out of its rule.
    pub fn from_env(function_default_secs: u64) -> Result<Self, ConfigError> {
        let timeouts = Self {
            function: Duration::from_secs(number(
                "CLEARANCE_FUNCTION_TIMEOUT_SECS",
                function_default_secs,
                3..=900,
            )?),
            aws_attempt: millis("CLEARANCE_AWS_ATTEMPT_TIMEOUT_MS", 1_500, 100..=60_000)?,
            aws_operation: millis("CLEARANCE_AWS_OPERATION_TIMEOUT_MS", 4_000, 100..=120_000)?,
            aws_attempts_max: number("CLEARANCE_AWS_ATTEMPTS_MAX", 3_u32, 1..=10)?,
            db_acquire: millis("CLEARANCE_DB_ACQUIRE_TIMEOUT_MS", 2_000, 100..=60_000)?,
            db_statement: millis("CLEARANCE_STATEMENT_TIMEOUT_MS", 10_000, 100..=600_000)?,
        };
        timeouts.check()?;
        Ok(timeouts)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let spare = Duration::from_secs(1);
        if self.aws_attempt > self.aws_operation {
            return Err(ConfigError::new(
                "CLEARANCE_AWS_ATTEMPT_TIMEOUT_MS",
                "must not exceed CLEARANCE_AWS_OPERATION_TIMEOUT_MS",
            ));
        }
        if self.aws_operation + spare > self.function {
            return Err(ConfigError::new(
                "CLEARANCE_AWS_OPERATION_TIMEOUT_MS",
                "must end a second before the function's timeout (CLEARANCE_FUNCTION_TIMEOUT_SECS)",
            ));
        }
        if self.db_acquire + self.db_statement + spare > self.function {
            return Err(ConfigError::new(
                "CLEARANCE_STATEMENT_TIMEOUT_MS",
                "with CLEARANCE_DB_ACQUIRE_TIMEOUT_MS, must end a second before the function's timeout \
                 (CLEARANCE_FUNCTION_TIMEOUT_SECS)",
            ));
        }
        Ok(())
    }
}

/// A PostgreSQL URL and the variable it came from (for init errors).
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    pub variable: &'static str,
    pub url: String,
}

/// What the read path needs to run.
#[derive(Debug, Clone)]
pub struct ReadEnv {
    /// PostgreSQL URL of the read-only role (`clearance_reader`).
    pub database: DatabaseUrl,
    /// The DynamoDB table (snapshots, scope mirror).
    pub table: String,
    pub snapshot_ttl_secs: i64,
    pub db_connections_max: u32,
    pub timeouts: Timeouts,
}

impl ReadEnv {
    /// Reads `CLEARANCE_READER_DATABASE_URL` (or `DATABASE_URL`), `CLEARANCE_TABLE`,
    /// `CLEARANCE_SNAPSHOT_TTL_SECS` (3600), `CLEARANCE_DB_CONNECTIONS_MAX` (2)
    /// and the [`Timeouts`] (a 29 s function).
    ///
    /// # Errors
    /// [`ConfigError`] naming the missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let database = database(&["CLEARANCE_READER_DATABASE_URL", "DATABASE_URL"])?;
        Ok(Self {
            database,
            table: var("CLEARANCE_TABLE")?,
            snapshot_ttl_secs: number("CLEARANCE_SNAPSHOT_TTL_SECS", 3_600_i64, 60..=86_400)?,
            db_connections_max: number("CLEARANCE_DB_CONNECTIONS_MAX", 2_u32, 1..=64)?,
            timeouts: Timeouts::from_env(29)?,
        })
    }
}

/// What the write path needs to run.
#[derive(Debug, Clone)]
pub struct WriteEnv {
    pub database: DatabaseUrl,
    /// The DynamoDB table (snapshots, scope mirror, idempotency records).
    pub table: String,
    pub db_connections_max: u32,
    /// Largest selection cleared inside the request.
    pub sync_rows_max: usize,
    pub idempotency_ttl_secs: i64,
    pub idempotency_lease_secs: i64,
    pub timeouts: Timeouts,
    pub tolerance: clearance_core::tolerance::Tolerance,
}

impl WriteEnv {
    /// Reads `CLEARANCE_APP_DATABASE_URL` (or `DATABASE_URL`), `CLEARANCE_TABLE`,
    /// `CLEARANCE_DB_CONNECTIONS_MAX` (2), `CLEARANCE_SYNC_ROWS_MAX` (2000),
    /// `CLEARANCE_IDEMPOTENCY_TTL_SECS` (86400, at least that),
    /// `CLEARANCE_IDEMPOTENCY_LEASE_SECS` (60) and the [`Timeouts`] (a 29 s function).
    ///
    /// # Errors
    /// [`ConfigError`] naming the missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let database = database(&["CLEARANCE_APP_DATABASE_URL", "DATABASE_URL"])?;
        let timeouts = Timeouts::from_env(29)?;
        let idempotency_lease_secs = number("CLEARANCE_IDEMPOTENCY_LEASE_SECS", 60_i64, 1..=900)?;
        check_lease(idempotency_lease_secs, &timeouts)?;
        Ok(Self {
            database,
            table: var("CLEARANCE_TABLE")?,
            db_connections_max: number("CLEARANCE_DB_CONNECTIONS_MAX", 2_u32, 1..=64)?,
            sync_rows_max: number(
                "CLEARANCE_SYNC_ROWS_MAX",
                clearance_core::write::SYNC_ROWS_MAX_DEFAULT,
                1..=100_000,
            )?,
            idempotency_ttl_secs: number("CLEARANCE_IDEMPOTENCY_TTL_SECS", 86_400_i64, 86_400..=30 * 86_400)?,
            idempotency_lease_secs,
            timeouts,
            tolerance: tolerance()?,
        })
    }
}

/// `CLEARANCE_DIFFERENCE_TOLERANCE` (`CUR=AMOUNT,...`: the cap of each
/// currency named; 1.00 for the others) and
/// `CLEARANCE_DIFFERENCE_TOLERANCE_BPS` (10: 0.1 % of the check); the
/// smaller of the two applies.
fn tolerance() -> Result<clearance_core::tolerance::Tolerance, ConfigError> {
    let rate = number(
        "CLEARANCE_DIFFERENCE_TOLERANCE_BPS",
        clearance_core::tolerance::RATE_BPS_DEFAULT,
        0..=10_000,
    )?;
    let caps = std::env::var("CLEARANCE_DIFFERENCE_TOLERANCE").unwrap_or_default();
    clearance_core::tolerance::Tolerance::parse(&caps, rate)
        .map_err(|rule| ConfigError::new("CLEARANCE_DIFFERENCE_TOLERANCE", rule))
}

/// A request holds its idempotency key for the lease: a lease shorter than
/// the function may run would let a retry take over a request still
/// running. The lease must outlast the function's timeout.
fn check_lease(lease_secs: i64, timeouts: &Timeouts) -> Result<(), ConfigError> {
    let function_secs = i64::try_from(timeouts.function.as_secs()).unwrap_or(i64::MAX);
    if lease_secs <= function_secs {
        return Err(ConfigError::new(
            "CLEARANCE_IDEMPOTENCY_LEASE_SECS",
            format!("must be longer than the function's timeout ({function_secs} s, CLEARANCE_FUNCTION_TIMEOUT_SECS)"),
        ));
    }
    Ok(())
}

/// What the write function needs beyond [`WriteEnv`]: where batch jobs
/// start and where events go.
#[derive(Debug, Clone)]
pub struct WriteFunctionEnv {
    pub write: WriteEnv,
    pub state_machine_arn: String,
    pub event_bus: String,
}

impl WriteFunctionEnv {
    /// [`WriteEnv`], `CLEARANCE_STATE_MACHINE_ARN` and `CLEARANCE_EVENT_BUS`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let write = WriteEnv::from_env()?;
        let state_machine_arn = var("CLEARANCE_STATE_MACHINE_ARN")?;
        if !state_machine_arn.starts_with("arn:") {
            return Err(ConfigError::new("CLEARANCE_STATE_MACHINE_ARN", "must be an ARN (arn:...)"));
        }
        Ok(Self { write, state_machine_arn, event_bus: var("CLEARANCE_EVENT_BUS")? })
    }
}

/// What the job-status function needs.
#[derive(Debug, Clone)]
pub struct JobsEnv {
    pub table: String,
    pub timeouts: Timeouts,
}

impl JobsEnv {
    /// Reads `CLEARANCE_TABLE` and the [`Timeouts`] (a 29 s function).
    ///
    /// # Errors
    /// [`ConfigError`] naming the missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { table: var("CLEARANCE_TABLE")?, timeouts: Timeouts::from_env(29)? })
    }
}

/// What the batch-steps function needs.
#[derive(Debug, Clone)]
pub struct BatchEnv {
    pub database: DatabaseUrl,
    pub table: String,
    pub event_bus: String,
    pub timeouts: Timeouts,
}

impl BatchEnv {
    /// Reads `CLEARANCE_APP_DATABASE_URL` (or `DATABASE_URL`), `CLEARANCE_TABLE`,
    /// `CLEARANCE_EVENT_BUS` and the [`Timeouts`] (a 120 s function).
    ///
    /// # Errors
    /// [`ConfigError`] naming the missing or malformed variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let database = database(&["CLEARANCE_APP_DATABASE_URL", "DATABASE_URL"])?;
        Ok(Self {
            database,
            table: var("CLEARANCE_TABLE")?,
            event_bus: var("CLEARANCE_EVENT_BUS")?,
            timeouts: Timeouts::from_env(120)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            function: Duration::from_secs(29),
            aws_attempt: Duration::from_millis(1_500),
            aws_operation: Duration::from_secs(4),
            aws_attempts_max: 3,
            db_acquire: Duration::from_secs(2),
            db_statement: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_default_timeouts_fit_inside_the_function() {
        assert_eq!(timeouts().check(), Ok(()));
    }

    #[test]
    fn a_lease_the_function_can_outlive_is_refused() {
        assert_eq!(check_lease(30, &timeouts()), Ok(()));
        for short in [1, 28, 29] {
            assert_eq!(
                check_lease(short, &timeouts()).map_err(|e| e.variable),
                Err("CLEARANCE_IDEMPOTENCY_LEASE_SECS")
            );
        }
    }

    #[test]
    fn a_dependency_timeout_past_the_function_timeout_is_refused_by_name() {
        let aws = Timeouts { aws_operation: Duration::from_secs(29), ..timeouts() };
        assert_eq!(aws.check().map_err(|e| e.variable), Err("CLEARANCE_AWS_OPERATION_TIMEOUT_MS"));
        let db = Timeouts { db_statement: Duration::from_secs(27), ..timeouts() };
        assert_eq!(db.check().map_err(|e| e.variable), Err("CLEARANCE_STATEMENT_TIMEOUT_MS"));
        let attempt = Timeouts { aws_attempt: Duration::from_secs(5), ..timeouts() };
        assert_eq!(attempt.check().map_err(|e| e.variable), Err("CLEARANCE_AWS_ATTEMPT_TIMEOUT_MS"));
    }
}
