//! The real `claimcheck-api` binary on a random port, on a fresh database,
//! with typed helpers for requests.

use std::{process::Stdio, sync::Arc, time::Duration};

use claimcheck::tokens::{Scope, TokenStore};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{binary, db::TestDb, required_env, stores::test_prefix};

type Logs = Arc<std::sync::Mutex<Vec<String>>>;

/// Which object store the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The filesystem store, in a temporary directory.
    Fs,
    /// The Garage S3 server `scripts/test` started, on a private prefix.
    S3,
}

/// A running API process.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its database (shared by every process started with [`TestApp::another`]).
    pub db: Arc<TestDb>,
    /// A token with `upload` and `consume` for owner `alice`.
    pub token: String,
    /// A token with `admin` only.
    pub admin_token: String,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// The store it runs on.
    pub store: Store,
    /// The key prefix of its objects.
    pub prefix: String,
    /// The filesystem store's root, for the fs store.
    pub fs_root: Option<Arc<tempfile::TempDir>>,
    /// Every line the process logged so far.
    pub logs: Arc<std::sync::Mutex<Vec<String>>>,
    env: Vec<(String, String)>,
    child: Child,
}

impl TestApp {
    /// Starts an API on `store` with default settings.
    pub async fn spawn(store: Store) -> Self {
        Self::spawn_with(store, &[]).await
    }

    /// Starts an API on `store` with extra environment variables.
    pub async fn spawn_with(store: Store, extra: &[(&str, &str)]) -> Self {
        let db = Arc::new(TestDb::new().await);
        let prefix = test_prefix();
        let fs_root = (store == Store::Fs).then(|| Arc::new(tempfile::tempdir().expect("tempdir")));
        let mut env = vec![("CLAIMCHECK_KEY_PREFIX".to_string(), prefix.clone())];
        match (&store, &fs_root) {
            (Store::Fs, Some(root)) => {
                env.push(("CLAIMCHECK_STORE".into(), "fs".into()));
                env.push((
                    "CLAIMCHECK_FS_ROOT".into(),
                    root.path().display().to_string(),
                ));
            }
            _ => env.extend(s3_env()),
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let tokens = TokenStore::new(db.pool.clone());
        let scopes = [Scope::Upload, Scope::Consume].into_iter().collect();
        let token = tokens
            .create("alice", &scopes, None, None)
            .await
            .unwrap()
            .token;
        let admin = [Scope::Admin].into_iter().collect();
        let admin_token = tokens
            .create("ops", &admin, None, None)
            .await
            .unwrap()
            .token;
        let (child, base, logs) = start(&db.url, &env).await;
        Self {
            logs,
            base,
            db,
            token,
            admin_token,
            http: reqwest::Client::new(),
            store,
            prefix,
            fs_root,
            env,
            child,
        }
    }

    /// A second API process on the same database and store: no sticky sessions.
    pub async fn another(&self) -> TestApp {
        let (child, base, logs) = start(&self.db.url, &self.env).await;
        TestApp {
            logs,
            base,
            db: self.db.clone(),
            token: self.token.clone(),
            admin_token: self.admin_token.clone(),
            http: reqwest::Client::new(),
            store: self.store,
            prefix: self.prefix.clone(),
            fs_root: self.fs_root.clone(),
            env: self.env.clone(),
            child,
        }
    }

    /// A token for another owner with the given scopes.
    pub async fn token_for(&self, owner: &str, scopes: &[Scope]) -> String {
        let scopes = scopes.iter().copied().collect();
        TokenStore::new(self.db.pool.clone())
            .create(owner, &scopes, None, None)
            .await
            .unwrap()
            .token
    }

    /// `METHOD base+path` with the upload token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// `METHOD base+path` with the admin token, answered as JSON.
    pub async fn admin_json(&self, method: reqwest::Method, path: &str) -> Value {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET base+path` with `token` (or none), for authentication checks.
    pub async fn get_as(&self, token: Option<&str>, path: &str) -> reqwest::Response {
        let req = self.http.get(format!("{}{path}", self.base));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
        .send()
        .await
        .unwrap()
    }

    /// `GET base+path` with the upload token, as JSON (any status).
    pub async fn get_json(&self, path: &str) -> Value {
        self.req(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Starts a chunked upload of `size` bytes; returns the claim JSON.
    pub async fn init(&self, size: u64, part_size: Option<u64>) -> Value {
        let mut body = serde_json::json!({
            "filename": "big.bin", "content_type": "application/octet-stream", "size": size,
        });
        if let Some(ps) = part_size {
            body["part_size"] = ps.into();
        }
        let res = self
            .req(reqwest::Method::POST, "/v1/uploads/multipart")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "init: {}", res.text().await.unwrap());
        res.json().await.unwrap()
    }

    /// PUTs part `n` with `body`; returns the response.
    pub async fn put_part(
        &self,
        id: &str,
        n: u32,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.req(reqwest::Method::PUT, &format!("/v1/uploads/{id}/parts/{n}"))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Completes an upload; returns the response.
    pub async fn complete(&self, id: &str) -> reqwest::Response {
        self.req(reqwest::Method::POST, &format!("/v1/uploads/{id}/complete"))
            .send()
            .await
            .unwrap()
    }

    /// One value from the database.
    pub async fn sql_i64(&self, sql: &str) -> i64 {
        self.db
            .client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Environment for the Garage server `scripts/test` started.
pub fn s3_env() -> Vec<(String, String)> {
    vec![
        ("CLAIMCHECK_STORE".into(), "s3".into()),
        (
            "CLAIMCHECK_S3_ENDPOINT".into(),
            required_env("CLAIMCHECK_TEST_S3_ENDPOINT"),
        ),
        (
            "CLAIMCHECK_S3_BUCKET".into(),
            required_env("CLAIMCHECK_TEST_S3_BUCKET"),
        ),
        (
            "CLAIMCHECK_S3_REGION".into(),
            required_env("CLAIMCHECK_TEST_S3_REGION"),
        ),
        ("CLAIMCHECK_S3_FORCE_PATH_STYLE".into(), "true".into()),
        (
            "AWS_ACCESS_KEY_ID".into(),
            required_env("CLAIMCHECK_TEST_S3_ACCESS_KEY"),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            required_env("CLAIMCHECK_TEST_S3_SECRET_KEY"),
        ),
    ]
}

/// Starts the binary on port 0 and reads the port it bound from its log.
async fn start(database_url: &str, env: &[(String, String)]) -> (Child, String, Logs) {
    let mut child = Command::new(binary("claimcheck-api"))
        .env("DATABASE_URL", database_url)
        .env("CLAIMCHECK_LISTEN", "127.0.0.1:0")
        .env("CLAIMCHECK_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start claimcheck-api");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read the api's log") {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if entry["message"] == "claimcheck-api listening" {
                return entry["port"].as_u64().expect("port in the log");
            }
        }
        panic!("claimcheck-api exited before listening");
    })
    .await
    .expect("claimcheck-api listens within 30 s");
    // Keep reading the log so the process never blocks on a full pipe, and
    // keep it for tests that check what was (not) logged.
    let logs = Logs::default();
    let kept = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().expect("log buffer").push(line);
        }
    });
    (child, format!("http://127.0.0.1:{port}"), logs)
}

impl TestApp {
    /// Sends a request by hand over TCP: `head` (request line and headers,
    /// without the blank line), then `body`, then closes the sending side;
    /// returns whatever the server answered (empty if it just closed).
    /// For bodies that lie about their length or stop half-way.
    pub async fn raw(&self, head: &str, body: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "{head}\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.token
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let _ = stream.write_all(body).await;
        let _ = stream.shutdown().await;
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    }
}
