//! AWS's own published event examples, as the `aws_lambda_events` crate
//! ships them under `src/fixtures/`: found through `cargo metadata`, so the
//! tests read the very files of the locked crate version, not a hand copy.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

/// The target the tests run on (this machine kind's).
const HOST: &str = "x86_64-unknown-linux-gnu";

/// The folder of the locked `aws_lambda_events` crate's fixtures.
///
/// # Errors
/// When `cargo metadata` fails or does not list the crate.
pub fn fixtures_dir() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        // This platform's graph only: the crates the build already fetched.
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", HOST])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("running cargo metadata")?;
    anyhow::ensure!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "aws_lambda_events")
        .and_then(|p| p["manifest_path"].as_str())
        .context("aws_lambda_events is not in the dependency graph")?;
    let dir = PathBuf::from(manifest).parent().context("manifest without a folder")?.join("src/fixtures");
    anyhow::ensure!(dir.is_dir(), "{} is not a folder", dir.display());
    Ok(dir)
}

/// One published fixture, parsed.
///
/// # Errors
/// When the file is missing or not JSON.
pub fn fixture(name: &str) -> anyhow::Result<serde_json::Value> {
    let path = fixtures_dir()?.join(name);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}
