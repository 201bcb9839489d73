//! In a real browser: Debian's Chromium, driven by playwright-core from the
//! Node scripts under `tests/browser/`, against the real API binary. The
//! upload page (Uppy through tus), uploads from another origin (CORS, the
//! headers browsers may read, presigned parts straight to Garage), and a
//! reload mid-upload that resumes.
//!
//! `scripts/test` installs Chromium and the scripts' pinned packages
//! (`scripts/lib/browser.sh`), builds the page (`scripts/lib/web.sh`), and
//! exports where they are; a run without them fails, never skips.

mod cross_origin;
mod page;
mod reload;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

/// How long one script may take, start to result (Chromium included).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

/// A variable `scripts/test` exports for these tests, or a panic saying
/// how to get it: never a skip.
fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with scripts/test, which installs Chromium \
             and the browser scripts' packages (scripts/lib/browser.sh) and builds the \
             upload page (scripts/lib/web.sh)"
        )
    })
}

/// The built upload page (`web/dist`), for `CLAIMCHECK_WEB_DIR`.
pub fn web_dir() -> String {
    required_env("CLAIMCHECK_TEST_WEB_DIR")
}

/// A browser script running: its JSON lines on stdout, its stdin for the
/// test's answers, its stderr kept for the failure message.
pub struct Script {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
}

impl Script {
    /// Starts `tests/browser/{name}` with `args` (JSON, its argv[2]).
    pub fn start(name: &str, args: &Value) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("browser")
            .join(name);
        let mut child = Command::new(required_env("CLAIMCHECK_TEST_NODE"))
            .arg(&script)
            .arg(args.to_string())
            .env(
                "CLAIMCHECK_TEST_BROWSER_MODULES",
                required_env("CLAIMCHECK_TEST_BROWSER_MODULES"),
            )
            .env(
                "CLAIMCHECK_TEST_CHROMIUM",
                required_env("CLAIMCHECK_TEST_CHROMIUM"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting node {}: {e}", script.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let kept = stderr.clone();
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text).await;
            kept.lock().unwrap().push_str(&text);
        });
        Self {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            lines: BufReader::new(child.stdout.take().expect("stdout")).lines(),
            child,
            stderr,
        }
    }

    /// The next line whose `event` is `event` (earlier lines are skipped).
    pub async fn event(&mut self, event: &str) -> Value {
        let read = async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) if v["event"] == event => return Some(v),
                    _ => eprintln!("[{}] {line}", self.name),
                }
            }
            None
        };
        match tokio::time::timeout(SCRIPT_TIMEOUT, read).await {
            Ok(Some(v)) => v,
            Ok(None) => {
                let status = self.child.wait().await.unwrap();
                // Let the stderr task take the last of it.
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "{} ended ({status}) before `{event}`:\n{}",
                    self.name,
                    self.stderr.lock().unwrap()
                )
            }
            Err(_) => panic!(
                "{} sent no `{event}` within {SCRIPT_TIMEOUT:?}:\n{}",
                self.name,
                self.stderr.lock().unwrap()
            ),
        }
    }

    /// Sends one JSON line to the script.
    pub async fn send(&mut self, value: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{value}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Its `result`, once it exited successfully.
    pub async fn result(mut self) -> Value {
        let result = self.event("result").await;
        drop(self.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the script exits after its result")
            .unwrap();
        assert!(
            status.success(),
            "{} exited with {status}:\n{}",
            self.name,
            self.stderr.lock().unwrap()
        );
        result
    }
}

/// Writes `bytes` as `dir/name`; its path as the scripts take it.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// Asserts the page raised no exception, broke no rule of its
/// Content-Security-Policy, and logged no error but those that contain one
/// of `expected` (a refused upload is logged by the browser and by Uppy).
pub fn assert_no_page_problems(problems: &Value, expected: &[&str]) {
    for kind in ["exceptions", "csp"] {
        assert_eq!(
            problems[kind].as_array().map(Vec::len),
            Some(0),
            "the page's {kind}: {problems}"
        );
    }
    for line in problems["console"].as_array().unwrap() {
        let line = line.as_str().unwrap();
        assert!(
            expected.iter().any(|e| line.contains(e)),
            "the page logged an error: {line}"
        );
    }
}
