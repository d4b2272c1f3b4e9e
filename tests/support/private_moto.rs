//! A moto server of one test's own (see `clearance_local::moto`), from the
//! venv `make up` installed.

use std::path::PathBuf;

pub use clearance_local::moto::PrivateMoto;

/// # Errors
/// When moto cannot be started (run `make up`).
pub async fn start() -> anyhow::Result<PrivateMoto> {
    PrivateMoto::start(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.dev/venv/bin")).await
}
