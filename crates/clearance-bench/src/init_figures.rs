//! Lambda init of each release binary: the time from starting the process
//! to its first request to the Lambda Runtime API (`GET
//! /2018-06-01/runtime/invocation/next`), which the runtime sends once main
//! has built its configuration, pools and SDK clients. A loopback listener
//! plays the Runtime API; the child is stopped (by its own pid) as soon as it
//! asks. Median of `runs` starts per binary.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub const FUNCTIONS: [&str; 4] = ["clearance-read", "clearance-write", "clearance-jobs", "clearance-batch"];
const WAIT_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitFigure {
    pub function: String,
    pub init_median_ms: f64,
    pub runs_ms: Vec<f64>,
    pub binary_bytes: u64,
}

/// `url` with `sslmode=require`: the functions refuse a database URL that
/// could connect in clear, and the local server has TLS on.
fn over_tls(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode=require")
}

fn database_url(var: &str) -> String {
    let url = std::env::var(var)
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/clearance".to_owned());
    over_tls(&url)
}

fn one_start(binary: &Path, function: &str) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let api = listener.local_addr()?.to_string();
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", format!("bench-{function}"))
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("CLEARANCE_STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:bench")
        .env("CLEARANCE_EVENT_BUS", "bench")
        .env("CLEARANCE_TABLE", "bench")
        .env("CLEARANCE_READER_DATABASE_URL", database_url("CLEARANCE_READER_DATABASE_URL"))
        .env("CLEARANCE_APP_DATABASE_URL", database_url("CLEARANCE_APP_DATABASE_URL"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let result = (|| {
        while started.elapsed() < WAIT_MAX {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                    let mut head = [0_u8; 64];
                    let n = stream.read(&mut head)?;
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    let line = String::from_utf8_lossy(&head[..n]);
                    anyhow::ensure!(line.contains("/runtime/invocation/next"), "{function} asked {line}");
                    return Ok(ms);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("{function} exited during init: {status}");
            }
        }
        anyhow::bail!("{function} did not reach the Runtime API within {WAIT_MAX:?}")
    })();
    // The child is ours: stop it by its own handle.
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// # Errors
/// When a binary is missing or does not reach the Runtime API.
pub fn lambda_init(release_dir: &Path, runs: usize) -> anyhow::Result<Vec<InitFigure>> {
    FUNCTIONS
        .iter()
        .map(|function| {
            let binary = release_dir.join(function);
            let binary_bytes =
                std::fs::metadata(&binary).with_context(|| format!("{}", binary.display()))?.len();
            let mut runs_ms =
                (0..runs).map(|_| one_start(&binary, function)).collect::<anyhow::Result<Vec<f64>>>()?;
            runs_ms.sort_by(f64::total_cmp);
            Ok(InitFigure {
                function: (*function).to_owned(),
                init_median_ms: runs_ms[runs_ms.len() / 2],
                runs_ms,
                binary_bytes,
            })
        })
        .collect()
}
