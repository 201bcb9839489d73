//! Helpers shared by claimcheck's integration and end-to-end tests: a fresh
//! database per test (dropped afterwards), object stores on a private prefix,
//! and the real binaries.
//!
//! The environment comes from `scripts/test`, which starts PostgreSQL and
//! Garage; a test run without it fails loudly instead of skipping.

pub mod api_process;
pub mod app;
pub mod core;
pub mod db;
pub mod faults;
pub mod jobs;
pub mod pooler;
pub mod procs;
pub mod stores;

/// Reads a variable `scripts/test` sets, or panics saying how to run the tests.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test, which starts PostgreSQL and Garage")
    })
}

/// The path of one of the workspace's binaries (`claimcheck-api`,
/// `claimcheck-worker`), built next to this test binary. `scripts/test`
/// builds them first (`cargo build --workspace --bins`).
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/suite-<hash> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}
