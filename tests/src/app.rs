//! The real `claimcheck-api` binary on a random port, on a fresh database,
//! with typed helpers for requests.

use std::{sync::Arc, time::Duration};

use claimcheck::tokens::Scope;
use serde_json::Value;

use crate::{
    api_process::{ApiProcess, Logs},
    db::{token, TestDb},
    stores::{test_prefix, S3Target},
};

/// Which object store the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The filesystem store, in a temporary directory.
    Fs,
    /// The Garage S3 server `scripts/test` started, on a private prefix.
    S3,
}

/// The owner of [`TestApp::alice_token`].
pub const ALICE: &str = "alice";
/// The owner of [`TestApp::admin_token`].
pub const OPS: &str = "ops";

/// A running API process.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its database (shared by every process started with [`TestApp::another`]).
    pub db: Arc<TestDb>,
    /// Minted at start for owner [`ALICE`] with scopes `upload` and
    /// `consume` ([`TestApp::req`] sends it).
    pub alice_token: String,
    /// Minted at start for owner [`OPS`] with scope `admin` only
    /// ([`TestApp::admin_json`] sends it).
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
    pub logs: Logs,
    env: Vec<(String, String)>,
    process: ApiProcess,
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
        let mut env: Vec<(String, String)> = match &fs_root {
            Some(root) => vec![
                ("CLAIMCHECK_KEY_PREFIX".into(), prefix.clone()),
                ("CLAIMCHECK_STORE".into(), "fs".into()),
                (
                    "CLAIMCHECK_FS_ROOT".into(),
                    root.path().display().to_string(),
                ),
            ],
            None => S3Target::shared()
                .env(&prefix)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        };
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (alice_token, admin_token) = (
            token(&db.pool, ALICE, &[Scope::Upload, Scope::Consume]).await,
            token(&db.pool, OPS, &[Scope::Admin]).await,
        );
        let process = ApiProcess::spawn(&db.url, &env).await;
        Self {
            logs: process.logs.clone(),
            base: process.base.clone(),
            db,
            alice_token,
            admin_token,
            http: reqwest::Client::new(),
            store,
            prefix,
            fs_root,
            env,
            process,
        }
    }

    /// A second API process on the same database and store: no sticky sessions.
    pub async fn another(&self) -> TestApp {
        self.another_with(&[]).await
    }

    /// [`another`](Self::another) with extra environment variables (a
    /// slower route to the same S3 server, say).
    pub async fn another_with(&self, extra: &[(&str, &str)]) -> TestApp {
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let process = ApiProcess::spawn(&self.db.url, &env).await;
        TestApp {
            logs: process.logs.clone(),
            base: process.base.clone(),
            db: self.db.clone(),
            alice_token: self.alice_token.clone(),
            admin_token: self.admin_token.clone(),
            http: reqwest::Client::new(),
            store: self.store,
            prefix: self.prefix.clone(),
            fs_root: self.fs_root.clone(),
            env,
            process,
        }
    }

    /// A token for another owner with the given scopes.
    pub async fn token_for(&self, owner: &str, scopes: &[Scope]) -> String {
        token(&self.db.pool, owner, scopes).await
    }

    /// `METHOD base+path` with [`TestApp::alice_token`].
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.alice_token)
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

    /// Stops the process gracefully (SIGTERM) and asserts it exited 0.
    pub async fn terminate(&mut self) {
        assert!(self.process.terminate().await, "the API exits 0 on SIGTERM");
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub async fn kill(&mut self) {
        self.process.kill9().await;
    }

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
            self.alice_token
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
