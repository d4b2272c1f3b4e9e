//! The reference grid's figures (issue "The reference grid"): the local
//! server's router (with the app at /app/) on a loopback port in this
//! process, over the bench ledger, and `web/e2e/figures.mjs` driving Debian's
//! headless Chromium against it: Search click -> first rows painted, cold
//! and cached, on the 100K-row treaty; scroll to page 50 -> rows painted.
//! And the app's JavaScript, gzipped. Skipped, with the reason, when the app
//! is not built or Chromium or Node.js is missing (`bash scripts/web.sh
//! --browser` provides all three).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clearance_http::encoding::{encode, Coding};
use serde::{Deserialize, Serialize};

const DIST: &str = "web/dist";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Browser runs (each: a cold search, the cached one, the scroll).
const RUNS: u32 = 3;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BrowserFigures {
    pub treaty: String,
    pub rows: u64,
    pub cold_ms: Vec<f64>,
    pub cached_ms: Vec<f64>,
    pub scroll_page_50_ms: Vec<f64>,
    /// Measured here, not by the browser script.
    #[serde(default)]
    pub js_bytes: u64,
    #[serde(default)]
    pub js_gzip_bytes: u64,
}

/// Why the browser figures cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    if !Path::new(DIST).join("index.html").exists() {
        return Some(format!("{DIST} is not built (bash scripts/web.sh)"));
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (bash scripts/web.sh --browser)"));
    }
    if std::process::Command::new("node").arg("--version").output().is_err() {
        return Some("node is missing".to_owned());
    }
    None
}

/// The app's JavaScript: (bytes, gzipped bytes).
fn bundle() -> anyhow::Result<(u64, u64)> {
    let (mut plain, mut gzip) = (0, 0);
    for entry in std::fs::read_dir(Path::new(DIST).join("assets"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "js") {
            let bytes = std::fs::read(&path)?;
            plain += bytes.len() as u64;
            gzip += encode(Coding::Gzip, &bytes)?.len() as u64;
        }
    }
    Ok((plain, gzip))
}

/// Runs the browser figures on `treaty` of the bench database.
///
/// # Errors
/// When the server cannot start or the browser run fails.
pub async fn run(database_url: &str, table: &str, treaty: &str) -> anyhow::Result<BrowserFigures> {
    let stack = Arc::new(crate::grid_figures::read_only_stack(database_url, table).await?);
    let router =
        clearance_local::server::with_app(clearance_local::server::router(stack, &[]), Path::new(DIST));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let (url, treaty_arg) = (format!("http://{addr}"), treaty.to_owned());
    // The script bounds every wait (60 s), so the child ends by itself.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("web/e2e/figures.mjs")
            .env("APP_URL", url)
            .env("TREATY", treaty_arg)
            .env("RUNS", RUNS.to_string())
            .output()
    })
    .await
    .context("the browser run panicked");
    server.abort();
    let output = output?.context("running node web/e2e/figures.mjs")?;
    anyhow::ensure!(
        output.status.success(),
        "the browser figures failed: {}",
        String::from_utf8_lossy(&output.stderr).lines().take(12).collect::<Vec<_>>().join("\n")
    );
    let mut figures: BrowserFigures = serde_json::from_slice(&output.stdout).context("the figures' JSON")?;
    (figures.js_bytes, figures.js_gzip_bytes) = bundle()?;
    Ok(figures)
}
