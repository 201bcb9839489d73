//! The real `claimcheck-api` binary on a random port: started, watched
//! (`/proc`, its log) and killed. [`crate::app::TestApp`] and the fault
//! suite both start it this way.

use std::{
    ffi::OsStr,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
    sync::oneshot,
};

use crate::binary;

/// Every line a process wrote so far, shared with the tasks that read them.
pub type Logs = Arc<Mutex<Vec<String>>>;

/// A `claimcheck-api` process on a random port: its pid for `kill -9` and
/// `/proc`, and everything it wrote (standard output and error).
pub struct ApiProcess {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its process id.
    pub pid: u32,
    /// Every line it wrote so far.
    pub logs: Logs,
    child: Child,
}

impl ApiProcess {
    /// Starts the API on `database_url` with `env` (store settings and
    /// more) and waits until it listens: it binds port 0 and logs the port
    /// it got.
    pub async fn spawn<K, V>(database_url: &str, env: &[(K, V)]) -> Self
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut command = Command::new(binary("claimcheck-api"));
        command
            .env("DATABASE_URL", database_url)
            .env("CLAIMCHECK_LISTEN", "127.0.0.1:0")
            .env("CLAIMCHECK_LOG_FORMAT", "json")
            .env("RUST_LOG", "info");
        for (k, v) in crate::db::pooler_env_for(database_url) {
            command.env(k, v);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start claimcheck-api");
        let pid = child.id().expect("pid");
        let logs = Logs::default();
        // Standard error carries what the JSON log cannot (a panic's
        // message): kept for `panics` and echoed into the test's output.
        let stderr = child.stderr.take().expect("stderr");
        keep_lines(stderr, logs.clone(), |line| eprintln!("{line}"));
        let (port_tx, port_rx) = oneshot::channel();
        let mut port_tx = Some(port_tx);
        let stdout = child.stdout.take().expect("stdout");
        keep_lines(stdout, logs.clone(), move |line| {
            // Lines are parsed only until the port is known.
            let Some(tx) = port_tx.take() else { return };
            match listening_port(line) {
                Some(port) => {
                    let _ = tx.send(port);
                }
                None => port_tx = Some(tx),
            }
        });
        let port = tokio::time::timeout(Duration::from_secs(30), port_rx)
            .await
            .expect("claimcheck-api listens within 30 s")
            .expect("claimcheck-api exited before listening");
        Self {
            base: format!("http://127.0.0.1:{port}"),
            pid,
            logs,
            child,
        }
    }

    /// `kill -9`, and waits for it.
    pub async fn kill9(&mut self) {
        // An error means it had already exited: nothing left to kill.
        let _ = self.child.kill().await;
    }

    /// `SIGTERM`, then waits for a graceful exit (20 s at most) and returns
    /// whether it exited 0.
    pub async fn terminate(&mut self) -> bool {
        let sent = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {}", self.pid);
        match tokio::time::timeout(std::time::Duration::from_secs(20), self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => false,
        }
    }

    /// Whether the process still runs (it did not crash or exit).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Open file descriptors (sockets included), from `/proc`.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Resident memory in KiB, from `/proc`.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Lines that show a panic or an `internal` (500) answer.
    pub fn panics(&self) -> Vec<String> {
        self.logs
            .lock()
            .expect("log buffer")
            .iter()
            .filter(|l| l.contains("panicked") || l.contains("\"status\":500"))
            .cloned()
            .collect()
    }
}

/// Reads `stream` line by line until it closes, showing each line to `seen`
/// and keeping it in `logs`: the process never blocks on a full pipe, and
/// tests can check what was (not) logged.
fn keep_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
    logs: Logs,
    mut seen: impl FnMut(&str) + Send + 'static,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            seen(&line);
            logs.lock().expect("log buffer").push(line);
        }
    });
}

/// The port of the JSON log line "claimcheck-api listening", if `line` is it.
fn listening_port(line: &str) -> Option<u64> {
    let entry: Value = serde_json::from_str(line).ok()?;
    (entry["message"] == "claimcheck-api listening")
        .then(|| entry["port"].as_u64().expect("port in the log"))
}
