//! A cold start: the one SDK configuration and the one pool, each bounded by
//! the function's [`Timeouts`], and what happens when the configuration is
//! wrong: one JSON log line naming the variable and the rule, the error
//! posted to the Runtime API's init-error endpoint, exit.

use clearance_http::config::{ConfigError, DatabaseUrl, Timeouts};
use lambda_runtime_api_client::body::Body;
use lambda_runtime_api_client::PooledClient;

/// The error type the Runtime API records for a configuration error.
pub const INIT_ERROR_TYPE: &str = "Clearance.Configuration";

/// The process's one AWS SDK configuration, with the function's bounds on
/// every call.
pub async fn sdk_config(timeouts: &Timeouts) -> clearance_aws::SdkConfig {
    clearance_aws::sdk_config(clearance_aws::AwsLimits {
        attempt_timeout: timeouts.aws_attempt,
        operation_timeout: timeouts.aws_operation,
        attempts_max: timeouts.aws_attempts_max,
        ..clearance_aws::AwsLimits::default()
    })
    .await
}

/// The pool of a function: lazy (init never waits on the database), TLS
/// required (`sslmode` require, verify-ca or verify-full, the CA bundle
/// present), acquire and statement bounded by `timeouts`.
///
/// # Errors
/// [`ConfigError`] naming the URL's variable and what is wrong with it.
pub fn database_pool(
    database: &DatabaseUrl,
    connections_max: u32,
    timeouts: &Timeouts,
) -> Result<sqlx::PgPool, ConfigError> {
    let limits = clearance_pg::PoolLimits {
        connections_max,
        acquire_timeout: timeouts.db_acquire,
        statement_timeout: timeouts.db_statement,
    };
    clearance_pg::require_tls(&database.url)
        .and_then(|()| clearance_pg::connect_lazy(&database.url, limits))
        .map_err(|e| ConfigError::new(database.variable, format!("{e:#}")))
}

/// The value, or the end of this cold start: see [`init_failed`].
pub async fn configured<T>(result: Result<T, ConfigError>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => init_failed(&err).await,
    }
}

/// Logs `err` as one JSON line (variable, rule), reports it to the Runtime
/// API's init-error endpoint when there is one, and exits with status 1.
pub async fn init_failed(err: &ConfigError) -> ! {
    tracing::error!(variable = err.variable, rule = %err.rule, "cannot start: {err}");
    if let Err(report) = report_init_error(err).await {
        tracing::error!(error = %report, "the init error could not be reported to the Runtime API");
    }
    std::process::exit(1)
}

/// Posts `err` to `/2018-06-01/runtime/init/error` of the Runtime API named
/// by `AWS_LAMBDA_RUNTIME_API`, as the Lambda runtime interface describes:
/// a `Lambda-Runtime-Function-Error-Type` header and a JSON body with
/// `errorMessage` and `errorType`.
///
/// # Errors
/// When `AWS_LAMBDA_RUNTIME_API` is not set or the post fails.
pub async fn report_init_error(err: &ConfigError) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some(),
        "AWS_LAMBDA_RUNTIME_API is not set"
    );
    let client = PooledClient::builder().build();
    let body = serde_json::json!({ "errorMessage": err.to_string(), "errorType": INIT_ERROR_TYPE });
    let request = http::Request::post("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", INIT_ERROR_TYPE)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))?;
    let response = client.call(request).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(response.status().is_success(), "the Runtime API answered {}", response.status());
    Ok(())
}
