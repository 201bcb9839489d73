//! `/v1/tus` driven by the tus clients people use, unchanged: tuspy (Python)
//! and tus-js-client (Node), at the versions `tests/clients/` pins, running
//! the scripts there. `scripts/test` installs them
//! (`scripts/lib/tus-clients.sh`) and says where they are; a run without
//! them fails rather than skips.

mod tus_js;
mod tuspy;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use claimcheck_tests::{app::TestApp, stores::random_bytes};
use reqwest::Method;
use serde_json::Value;
use tokio::process::Command;

use super::{claim_id, stored_object};

const MIB: u64 = 1024 * 1024;

/// A client run that takes longer has hung: the tests stay well under it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// A variable `scripts/test` sets once the clients are installed.
fn client_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with scripts/test, which installs the tus \
             clients (scripts/lib/tus-clients.sh: tus_clients_ensure_installed)"
        )
    })
}

/// A script under `tests/clients/`.
fn client_script(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(relative)
}

/// A client command pointed at `app`'s tus endpoint with Alice's token.
fn client_command(program: String, script: &str, app: &TestApp) -> Command {
    let mut command = Command::new(program);
    command
        .arg(client_script(script))
        .arg("--endpoint")
        .arg(format!("{}/v1/tus", app.base))
        .arg("--token")
        .arg(&app.alice_token)
        .kill_on_drop(true);
    command
}

/// tuspy, through `tests/clients/py/tuspy_upload.py`.
fn tuspy(app: &TestApp) -> Command {
    client_command(
        client_env("CLAIMCHECK_TUSPY_PYTHON"),
        "py/tuspy_upload.py",
        app,
    )
}

/// tus-js-client, through `tests/clients/js/tus_js_upload.js`.
fn tus_js(app: &TestApp) -> Command {
    let mut command = client_command(client_env("CLAIMCHECK_NODE"), "js/tus_js_upload.js", app);
    command.env("CLAIMCHECK_TUS_JS_DIR", client_env("CLAIMCHECK_TUS_JS_DIR"));
    command
}

/// Runs a client to its end; the JSON it printed. Panics, with everything
/// it wrote, unless it exited 0.
async fn run(mut command: Command) -> Value {
    let output = tokio::time::timeout(CLIENT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{command:?} ran longer than {CLIENT_TIMEOUT:?}"))
        .expect("start the client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{command:?}: {}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    // Shown with a failing test's output.
    eprintln!("client: {stdout}");
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: the client printed {stdout}\nstderr: {stderr}"))
}

/// A file of random bytes for a client to upload.
struct Sample {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Sample {
    fn new(seed: u64, len: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("sample-{seed}.bin"));
        let bytes = random_bytes(seed, len);
        std::fs::write(&path, &bytes).expect("write the sample");
        Sample {
            _dir: dir,
            path,
            bytes,
        }
    }

    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// The path (`/v1/tus/{id}`) of an upload URL a client printed.
fn upload_path(out: &Value) -> String {
    let url = out["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no upload URL in {out}"));
    let path = url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.path().to_owned());
    assert!(path.starts_with("/v1/tus/"), "{url}");
    path
}

/// What a finished upload must be: its claim `uploaded` with the sample's
/// size, its object the sample's bytes, and consumable by its owner.
async fn assert_uploaded_and_consumable(app: &TestApp, path: &str, sample: &Sample) {
    let claim = app
        .get_json(&format!("/v1/uploads/{}", claim_id(path)))
        .await;
    assert_eq!(claim["status"], "uploaded", "{claim}");
    assert_eq!(claim["size"], sample.len(), "{claim}");
    let stored = stored_object(app, path).await;
    assert_eq!(stored.len(), sample.bytes.len());
    assert!(
        stored == sample.bytes,
        "the object is the file, byte for byte"
    );
    let res = app
        .req(Method::POST, "/v1/claims/consume")
        .json(&serde_json::json!({"owner": "alice", "keys": [claim["key"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

/// The bytes this API process took in tus PATCHes (and creations).
async fn patched_bytes(app: &TestApp) -> u64 {
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("claimcheck_tus_patch_bytes_total "))
        .map(|v| v.trim().parse::<f64>().unwrap() as u64)
        .unwrap_or_else(|| panic!("no claimcheck_tus_patch_bytes_total in {metrics}"))
}
