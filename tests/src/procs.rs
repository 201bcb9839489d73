//! Real `claimcheck-worker` processes: spawn with an environment, signal,
//! kill, wait, and read their (JSON) log lines.

use std::{
    path::PathBuf,
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use crate::{binary, stores::S3Target};

/// A running worker whose standard output (the JSON log) goes to a file.
pub struct WorkerProcess {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl WorkerProcess {
    /// Starts `claimcheck-worker run` with `env` on top of a clean
    /// environment (PATH only): nothing from the test's own leaks in.
    pub fn spawn(env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the worker log");
        let log = dir.path().join("worker.log");
        let out = std::fs::File::create(&log).expect("worker log file");
        let child = worker_command(env)
            .arg("run")
            .stdout(out)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start claimcheck-worker");
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log lines written so far (JSON, one event a line).
    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The log lines whose message is `message`.
    pub fn events(&self, message: &str) -> Vec<String> {
        let needle = format!("\"message\":\"{message}\"");
        self.log_lines()
            .into_iter()
            .filter(|l| l.contains(&needle))
            .collect()
    }

    /// Waits until a log line has this `message` (panics after `timeout`).
    pub fn wait_for_log(&self, message: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.events(message).is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "no `{message}` log line within {timeout:?}; log:\n{}",
            self.log_lines().join("\n")
        );
    }

    /// Sends a signal by name (`TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// Whether the process is alive (not exited, nor a zombie not yet
    /// waited for).
    pub fn running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .map(|s| {
                let state = s.rsplit(") ").next().and_then(|r| r.chars().next());
                !matches!(state, Some('Z' | 'X') | None)
            })
            .unwrap_or(false)
    }

    /// `SIGTERM`, then waits (20 s at most) and asserts it exited 0: a
    /// graceful shutdown.
    pub fn terminate(&mut self) {
        self.signal("TERM");
        let status = self.wait(Duration::from_secs(20));
        assert!(status.success(), "worker {} exits 0: {status}", self.pid());
    }

    /// Waits for the process to exit (panics after `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the worker") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker {} still running after {timeout:?}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // A failed test must not leave workers behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `claimcheck-worker` with `env` on top of a clean environment.
pub fn worker_command(env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(binary("claimcheck-worker"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CLAIMCHECK_LOG_FORMAT", "json")
        .env("CLAIMCHECK_METRICS_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null());
    if let Some((_, url)) = env.iter().find(|(k, _)| *k == "DATABASE_URL") {
        for (k, v) in crate::db::pooler_env_for(url) {
            cmd.env(k, v);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `claimcheck-worker ARGS` to completion.
pub fn run_worker_command(env: &[(&str, String)], args: &[&str]) -> Output {
    worker_command(env)
        .args(args)
        .output()
        .expect("run claimcheck-worker")
}

/// The integer field `name` of a JSON log line (`"name":123`).
pub fn log_field(line: &str, name: &str) -> Option<i64> {
    let start = line.find(&format!("\"{name}\":"))? + name.len() + 3;
    let digits: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The lines of standard output that are not JSON log lines (command output).
pub fn plain_stdout(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.starts_with('{'))
        .map(str::to_owned)
        .collect()
}

/// A local port free a moment ago (bound, then closed), for a process to
/// listen on. As an endpoint that must refuse connections it is racy:
/// another test may bind it meanwhile; use [`RefusedPort`] for that.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    listener.local_addr().expect("local addr").port()
}

/// A local port that refuses connections for as long as this value lives,
/// like a server that is down: a socket is bound to it without listening,
/// so no other test can take the port meanwhile (a closed port could be).
pub struct RefusedPort {
    socket: tokio::net::TcpSocket,
}

impl RefusedPort {
    /// Reserves a port.
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind("127.0.0.1:0".parse().expect("an address"))
            .expect("bind a port");
        Self { socket }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("local addr").port()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// A local server that accepts connections and never answers: a store call
/// to it hangs (holding its lease) until the process is killed.
pub fn black_hole() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// The worker's environment for the test S3 bucket (Garage) under `prefix`,
/// talking to `endpoint` instead of Garage when given (a closed port, a
/// black hole).
pub fn s3_worker_env(
    database_url: &str,
    prefix: &str,
    endpoint: Option<String>,
) -> Vec<(&'static str, String)> {
    let mut s3 = S3Target::shared();
    if let Some(endpoint) = endpoint {
        s3.endpoint = endpoint;
    }
    s3.worker_env(database_url, prefix)
}

/// A plain HTTP/1.0 GET on localhost: the whole response, headers and body.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
}

/// A duration field of a JSON log line, in seconds: tracing writes a
/// `Duration` recorded with `?` as its `Debug` form (`"1.5s"`, `"750ms"`).
pub fn log_duration_secs(line: &str, name: &str) -> Option<f64> {
    let start = line.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let value = &line[start..start + line[start..].find('"')?];
    let (number, unit) = value.split_at(value.find(|c: char| c.is_alphabetic() || c == 'µ')?);
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        "µs" => 1e-6,
        "ns" => 1e-9,
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}
