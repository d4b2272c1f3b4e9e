//! A function that cannot start: each binary, run with a missing or bad
//! variable against a loopback listener playing the Lambda Runtime API,
//! logs one JSON line naming the variable and the rule, posts the error to
//! `/2018-06-01/runtime/init/error`, and exits 1 without asking for work.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};

/// What the Runtime API was told: (path, error-type header, body).
type Told = Arc<Mutex<Vec<(String, String, serde_json::Value)>>>;

const RUN_MAX: Duration = Duration::from_secs(20);

fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is not built (`cargo build --workspace --bins` builds it; `make test` does)",
        path.display()
    );
    Ok(path)
}

async fn runtime_api() -> anyhow::Result<(String, Told, tokio::task::JoinHandle<()>)> {
    let told: Told = Arc::default();
    let record = |path: &'static str| {
        move |State(told): State<Told>, headers: HeaderMap, body: String| async move {
            let kind = headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
            if let Ok(mut told) = told.lock() {
                told.push((path.to_owned(), kind, body));
            }
            axum::http::StatusCode::ACCEPTED
        }
    };
    let router = axum::Router::new()
        .route("/2018-06-01/runtime/init/error", post(record("/init/error")))
        .route("/2018-06-01/runtime/invocation/next", get(|| async { axum::http::StatusCode::GONE }))
        .with_state(Arc::clone(&told));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, told, server))
}

/// Runs `function` with only `env` (and the Runtime API), returning its exit
/// code, its log lines and what the Runtime API was told.
async fn start(
    function: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<(Option<i32>, Vec<serde_json::Value>, Told)> {
    let (api, told, server) = runtime_api().await?;
    let mut command = tokio::process::Command::new(binary(function)?);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_MAX, command.output())
        .await
        .with_context(|| format!("{function} did not exit within {RUN_MAX:?}"))??;
    server.abort();
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ok((output.status.code(), lines, told))
}

async fn assert_refused(
    function: &str,
    env: &[(&str, &str)],
    variable: &str,
    rule: &str,
) -> anyhow::Result<()> {
    let (code, lines, told) = start(function, env).await?;
    assert_eq!(code, Some(1), "{function} exit code");
    let errors: Vec<&serde_json::Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{function}: one JSON line: {lines:?}");
    assert_eq!(errors[0]["fields"]["variable"], variable, "{function}: {}", errors[0]);
    let logged = errors[0]["fields"]["rule"].as_str().unwrap_or_default();
    assert!(logged.contains(rule), "{function}: rule {logged:?} does not say {rule:?}");
    let told = told.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    assert_eq!(told.len(), 1, "{function}: the Runtime API was told once: {told:?}");
    let (path, kind, body) = &told[0];
    assert_eq!((path.as_str(), kind.as_str()), ("/init/error", clearance_lambda::init::INIT_ERROR_TYPE));
    assert_eq!(body["errorType"], clearance_lambda::init::INIT_ERROR_TYPE);
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains(variable) && message.contains(rule), "{function}: {message}");
    Ok(())
}

const TLS_URL: &str = "postgres://clearance_app@127.0.0.1:5432/clearance?sslmode=require";

#[tokio::test]
async fn each_function_that_cannot_start_names_the_variable_and_tells_the_runtime_api() -> anyhow::Result<()>
{
    assert_refused(
        "clearance-read",
        &[("CLEARANCE_READER_DATABASE_URL", TLS_URL)],
        "CLEARANCE_TABLE",
        "must be set",
    )
    .await?;
    assert_refused(
        "clearance-write",
        &[
            ("CLEARANCE_APP_DATABASE_URL", TLS_URL),
            ("CLEARANCE_TABLE", "t"),
            ("CLEARANCE_STATEMENT_TIMEOUT_MS", "40000"),
        ],
        "CLEARANCE_STATEMENT_TIMEOUT_MS",
        "function's timeout",
    )
    .await?;
    assert_refused(
        "clearance-jobs",
        &[("CLEARANCE_TABLE", "t"), ("CLEARANCE_AWS_ATTEMPTS_MAX", "many")],
        "CLEARANCE_AWS_ATTEMPTS_MAX",
        "whole number",
    )
    .await?;
    assert_refused(
        "clearance-batch",
        &[
            ("CLEARANCE_APP_DATABASE_URL", "postgres://clearance_app@127.0.0.1:5432/clearance"),
            ("CLEARANCE_TABLE", "t"),
            ("CLEARANCE_EVENT_BUS", "b"),
        ],
        "CLEARANCE_APP_DATABASE_URL",
        "sslmode",
    )
    .await?;
    let missing_ca = "postgres://clearance_reader@127.0.0.1:5432/clearance?sslmode=verify-full&sslrootcert=/opt/rds-ca/none.pem";
    assert_refused(
        "clearance-read",
        &[("CLEARANCE_READER_DATABASE_URL", missing_ca), ("CLEARANCE_TABLE", "t")],
        "CLEARANCE_READER_DATABASE_URL",
        "sslrootcert",
    )
    .await
}

#[tokio::test]
async fn a_function_with_a_good_configuration_asks_the_runtime_api_for_work() -> anyhow::Result<()> {
    // The control: the same listener, a sound configuration: no init error,
    // the runtime asks for an invocation (answered 410, so it exits).
    let (_, _, told) = start("clearance-jobs", &[("CLEARANCE_TABLE", "t")]).await?;
    let told = told.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    assert!(told.is_empty(), "{told:?}");
    Ok(())
}
