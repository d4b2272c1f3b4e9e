//! Every fuzz target's body on the stable toolchain: the seeds in
//! `fuzz/seeds/<target>/` and every input a fuzzing run once crashed on,
//! kept in `fuzz/regressions/<target>/`, go through the same function the
//! fuzzer runs (`clearance_fuzz`), with the same assertions. And the list of
//! targets in the crate, the binaries in `fuzz/` and its manifest agree.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    Ok(files)
}

#[test]
fn every_seed_and_every_past_crash_goes_through_its_target() -> std::io::Result<()> {
    let mut replayed = 0;
    for (name, body) in clearance_fuzz::TARGETS {
        let seeds = inputs(&fuzz_dir().join("seeds").join(name))?;
        assert!(!seeds.is_empty(), "{name} has no seed in fuzz/seeds/{name}");
        for path in seeds.iter().chain(&inputs(&fuzz_dir().join("regressions").join(name))?) {
            let data = std::fs::read(path)?;
            if let Err(panic) = std::panic::catch_unwind(|| body(&data)) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                panic!("{name} fails on {}: {message}", path.display());
            }
            replayed += 1;
        }
    }
    assert!(replayed >= clearance_fuzz::TARGETS.len());
    Ok(())
}

#[test]
fn the_fuzz_package_builds_exactly_the_targets_of_the_crate() -> std::io::Result<()> {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml"))?;
    let mut binaries: Vec<String> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .map(|n| n.trim_end_matches('"').to_owned())
        .filter(|n| n != "clearance-fuzz-targets")
        .collect();
    binaries.sort();
    let mut names: Vec<String> = clearance_fuzz::TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.sort();
    assert_eq!(binaries, names, "fuzz/Cargo.toml [[bin]] entries");
    for name in &names {
        let source = std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")))?;
        assert!(source.contains(&format!("clearance_fuzz::{name}(data)")), "fuzz_targets/{name}.rs");
    }
    Ok(())
}
