//! Tidy checks on the workspace itself.

use std::path::Path;
use std::process::Command;

/// Crates that do IO or tie the core to a platform.
const FORBIDDEN_IN_CORE: &[&str] = &[
    "sqlx",
    "tokio",
    "lambda_http",
    "lambda_runtime",
    "hyper",
    "reqwest",
    "aws-config",
    "aws-smithy-runtime",
];

#[test]
fn the_core_crate_depends_on_nothing_that_does_io() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "tree",
            "--offline",
            "-p",
            "clearance-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()?;
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8(output.stdout)?;
    let names: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"rust_decimal"), "the tree was read: {names:?}");
    for name in &names {
        assert!(
            !FORBIDDEN_IN_CORE.contains(name) && !name.starts_with("aws-sdk-"),
            "clearance-core depends on {name}, which does IO"
        );
    }
    Ok(())
}

#[test]
fn the_core_sources_touch_no_file_network_or_process() -> Result<(), Box<dyn std::error::Error>> {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/clearance-core/src")];
    let mut files = Vec::new();
    // Every source file, in folders too.
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut checked = 0;
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        for needle in ["std::fs", "std::net", "std::process", "std::env", "File::"] {
            assert!(!text.contains(needle), "{} uses {needle}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 4);
    Ok(())
}
