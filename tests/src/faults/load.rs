//! Clients that keep calling the API while a server it needs goes away, and
//! what they saw.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::task::JoinHandle;

/// The API as a client calls it: its base URL and a bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The bearer token sent with every request.
    pub token: String,
    /// An HTTP client.
    pub http: reqwest::Client,
}

impl Caller {
    /// Calls the API at `base` with `token`, on a client of its own.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// `METHOD base+path` with the token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }
}

/// Status, `code` (the problem's, if any) and Retry-After of a response.
pub async fn status_and_code(res: reqwest::Response) -> (u16, Option<String>, Option<String>) {
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (
        status,
        body["code"].as_str().map(str::to_owned),
        retry_after,
    )
}

/// One answer a client got.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When, since the clients started.
    pub at: Duration,
    /// Its status.
    pub status: u16,
    /// The problem's `code`, if any.
    pub code: Option<String>,
    /// Its Retry-After header, if any.
    pub retry_after: Option<String>,
}

impl Answer {
    /// A success (2xx).
    pub fn ok(&self) -> bool {
        self.status < 300
    }
}

/// How long a client waits before its next request.
#[derive(Debug, Clone, Copy)]
pub struct Pause {
    /// After a 200 or a 201.
    pub after_success: Duration,
    /// After any other answer.
    pub after_failure: Duration,
}

/// Clients calling the API in a loop until stopped, each answer recorded.
pub struct Clients {
    started: Instant,
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Clients {
    /// Starts `count` clients on `api`. Client `c` sends `request(api, c,
    /// i)` for its `i`-th request (from 1), then waits as `pause` says.
    /// A request that gets no answer at all fails the test: the API itself
    /// must stay up whatever the fault.
    pub fn start<F, Fut>(api: &Caller, count: u64, pause: Pause, request: F) -> Self
    where
        F: Fn(Caller, u64, u64) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
    {
        let started = Instant::now();
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..count)
            .map(|c| {
                let (api, request) = (api.clone(), request.clone());
                let (answers, stop) = (answers.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let res = request(api.clone(), c, i)
                            .await
                            .expect("the API itself stays up");
                        let (status, code, retry_after) = status_and_code(res).await;
                        answers.lock().unwrap().push(Answer {
                            at: started.elapsed(),
                            status,
                            code,
                            retry_after,
                        });
                        let wait = match status {
                            200 | 201 => pause.after_success,
                            _ => pause.after_failure,
                        };
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            started,
            answers,
            stop,
            tasks,
        }
    }

    /// Time since the clients started (the clock of [`Answer::at`]).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops the clients, waits for their last requests and returns every
    /// answer, in the order they came.
    pub async fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.answers.lock().unwrap().clone()
    }
}

/// The 503s the clients saw during an outage.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    /// When the first came.
    pub first: Duration,
    /// When the last came.
    pub last: Duration,
    /// How many there were.
    pub count: usize,
}

impl Outage {
    /// Checks that every one of `answers` was a success or a 503
    /// `unavailable` with Retry-After, and that there was at least one 503;
    /// returns when they came.
    pub fn seen_in(answers: &[Answer]) -> Self {
        let bad: Vec<_> = answers
            .iter()
            .filter(|a| !matches!(a.status, 200 | 201))
            .filter(|a| {
                !(a.status == 503
                    && a.code.as_deref() == Some("unavailable")
                    && a.retry_after.is_some())
            })
            .collect();
        assert!(
            bad.is_empty(),
            "only 503 unavailable with Retry-After: {bad:?}"
        );
        let unavailable: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
        assert!(!unavailable.is_empty(), "the outage was seen");
        Self {
            first: unavailable.first().unwrap().at,
            last: unavailable.last().unwrap().at,
            count: unavailable.len(),
        }
    }
}
