//! An HTTP fuzz run: schemathesis against `/openapi.json` with a token that
//! has every scope. No 5xx, no panic, the audit clean afterwards.

use std::time::Duration;

use claimcheck::tokens::Scope;
use claimcheck_tests::{
    db::TestDb,
    faults::{run_audit, serial, settle, token, ApiProcess, S3Target},
    stores::test_prefix,
};

/// `schemathesis`'s `st`: `CLAIMCHECK_SCHEMATHESIS` (scripts/test installs
/// it in a venv under the tools cache and sets it), else `st` on PATH.
fn schemathesis() -> String {
    if let Ok(path) = std::env::var("CLAIMCHECK_SCHEMATHESIS") {
        return path;
    }
    let on_path = std::process::Command::new("st").arg("--version").output();
    match on_path {
        Ok(out) if out.status.success() => "st".to_owned(),
        _ => panic!(
            "schemathesis is not installed: run the tests with scripts/test (it installs it), \
             or set CLAIMCHECK_SCHEMATHESIS to its `st`"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let _serial = serial().await;
    let st = schemathesis();
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let s3 = S3Target::shared();
    let mut env = s3.env(&prefix);
    env.push(("CLAIMCHECK_BODY_IDLE_TIMEOUT", "2s".into()));
    env.push(("CLAIMCHECK_MAX_UPLOAD_SIZE", "64MiB".into()));
    let mut api = ApiProcess::spawn(&db.url, &env).await;
    let token = token(
        &db.pool,
        "fuzzer",
        &[Scope::Upload, Scope::Consume, Scope::Admin],
    )
    .await;
    let report = tempfile::tempdir().unwrap();
    // tus bodies are `application/offset+octet-stream`: bytes, as
    // `application/octet-stream`, which schemathesis knows how to send.
    std::fs::write(
        report.path().join("claimcheck_hooks.py"),
        "import schemathesis\n\
         schemathesis.serializer.alias(\"application/offset+octet-stream\", \"application/octet-stream\")\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let run = tokio::process::Command::new("timeout")
        .args(["-k", "10", "240", &st, "run"])
        .arg(format!("{}/openapi.json", api.base))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "not_a_server_error"])
        .args(["--phases", "examples,coverage,fuzzing"])
        // One worker: with two threads, hypothesis (on CPython 3.11) now and
        // then fails in its own lambda-source cache ("AST constructor
        // recursion depth mismatch"), a tool error, not a finding.
        .args(["--max-examples", "25", "--seed", "42", "--workers", "1"])
        .args(["--request-timeout", "15", "--no-shrink"])
        .args(["--suppress-health-check", "all", "--warnings", "off"])
        .arg("--report-dir")
        .arg(report.path())
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "claimcheck_hooks")
        .env("PYTHONPATH", report.path())
        // Its cache (.schemathesis/) goes there too, not into the work tree.
        .current_dir(report.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(260), run)
        .await
        .expect("schemathesis finishes in time")
        .expect("run schemathesis");
    let printed = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "schemathesis found failures ({}):\n{printed}",
        out.status
    );
    assert!(api.alive(), "the API survived the fuzzer");
    assert!(api.panics().is_empty(), "{:?}", api.panics());
    let settled = settle(&db.pool, &s3, &prefix).await;
    let audit = run_audit(&db.url, &s3, &prefix);
    let summary: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains("passed") || l.contains("cases") || l.contains("operations"))
        .collect();
    eprintln!(
        "FAULT fuzz: schemathesis ran {took:.1?}: {summary:?}; settle: expired {}, drained {}; audit: {}",
        settled.expired,
        settled.drained,
        audit.lines().next().unwrap_or_default()
    );
}
