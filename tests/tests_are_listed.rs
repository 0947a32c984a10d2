//! Every test file of this crate is a test target: the crate lists its targets by hand
//! (`autotests = false`, so that the folder can hold the fixtures and shared modules
//! too), and a file left out of `Cargo.toml` would silently never run.

use std::path::Path;

#[test]
fn every_test_file_is_a_test_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml is readable");
    let mut missing = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir).expect("the test folder is readable") {
        let name = entry.expect("a directory entry").file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".rs") {
            continue;
        }
        files += 1;
        if !manifest.contains(&format!("path = \"{name}\"")) {
            missing.push(name.into_owned());
        }
    }
    assert!(
        files > 20,
        "only {files} test files found in {}",
        dir.display()
    );
    assert!(
        missing.is_empty(),
        "test files not listed as [[test]] in Cargo.toml: {missing:?}"
    );
}
