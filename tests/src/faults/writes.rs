//! Clients that write through the API (uploads single-shot and multipart,
//! adoption, deletes, discards) across a fault, retry each step the API
//! answered 503, and remember how far the API acknowledged each upload, so
//! that a scenario can check afterwards that no acknowledged write was lost.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use claimcheck::db::Pool;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::load::{Answer, Caller};
use crate::stores::random_bytes;

/// How far the API acknowledged an upload, in lifecycle order: each stage
/// implies the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Not found at all (only ever an actual state, never acknowledged).
    Missing,
    /// Multipart session started (201): a pending claim.
    Started,
    /// Its part stored (200).
    Part,
    /// An uploaded claim (201 single-shot, 200 complete).
    Uploaded,
    /// Consumed into the registry (200).
    Consumed,
    /// Its delete queued: deleted (202) or discarded (204).
    Deleted,
}

/// One upload a client saw acknowledged, and its last acknowledged stage.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its object key (unique per claim, kept by the registry and the queue).
    pub key: String,
    /// The last stage the API acknowledged.
    pub acked: Stage,
}

/// What the writers saw.
#[derive(Debug, Default)]
pub struct Written {
    /// Every answer, in the order they came.
    pub answers: Vec<Answer>,
    /// Every upload acknowledged at least once.
    pub items: Vec<Item>,
    /// Retries of a discard answered 404 after a 503: the first attempt
    /// had committed, its answer was lost with the connection.
    pub redone: usize,
    /// The longest any request took to be answered.
    pub slowest: Duration,
}

/// What a step came to.
enum Step {
    Done(Value),
    Refused,
    Stopped,
}

#[derive(Clone)]
struct Shared {
    started: Instant,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    items: Arc<Mutex<Vec<Item>>>,
    redone: Arc<AtomicUsize>,
    slowest: Arc<Mutex<Duration>>,
}

/// Clients writing in a loop until stopped.
pub struct Writers {
    shared: Shared,
    tasks: Vec<JoinHandle<()>>,
}

impl Writers {
    /// Starts `count` clients, client `c` on `apis[c % apis.len()]`, for
    /// `owner`'s token (scopes upload and consume). A third upload
    /// single-shot then adopt (some) and delete (some of those); a third
    /// multipart (start, one part, complete); a third single-shot then
    /// discard.
    pub fn start(apis: &[Caller], count: u64, owner: &str) -> Self {
        let shared = Shared {
            started: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
            answers: Arc::default(),
            items: Arc::default(),
            redone: Arc::default(),
            slowest: Arc::default(),
        };
        let tasks = (0..count)
            .map(|c| {
                let api = apis[c as usize % apis.len()].clone();
                let (shared, owner) = (shared.clone(), owner.to_owned());
                tokio::spawn(async move {
                    let mut i = 0;
                    while !shared.stop.load(Ordering::Relaxed) {
                        i += 1;
                        shared.flow(&api, &owner, c, i).await;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Self { shared, tasks }
    }

    /// Time since the writers started (the clock of [`Answer::at`]).
    pub fn elapsed(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// Stops the writers after their current request and returns what they saw.
    pub async fn stop(self) -> Written {
        self.shared.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        Written {
            answers: self.shared.answers.lock().unwrap().clone(),
            items: self.shared.items.lock().unwrap().clone(),
            redone: self.shared.redone.load(Ordering::Relaxed),
            slowest: *self.shared.slowest.lock().unwrap(),
        }
    }
}

impl Shared {
    /// One upload's life, as far as the stop flag and the API let it go.
    async fn flow(&self, api: &Caller, owner: &str, c: u64, i: u64) {
        let seed = c * 1_000_000 + i;
        if c % 3 == 1 {
            return self.multipart(api, seed).await;
        }
        let body = random_bytes(seed, 16 * 1024);
        let Some(claim) = self
            .step(false, || {
                api.req(Method::POST, "/v1/uploads?filename=s.bin")
                    .header("Content-Type", "application/octet-stream")
                    .body(body.clone())
            })
            .await
        else {
            return;
        };
        let (id, key) = (
            claim["id"].as_str().unwrap(),
            claim["key"].as_str().unwrap(),
        );
        let n = self.record(key, Stage::Uploaded);
        if c % 3 == 2 {
            let path = format!("/v1/uploads/{id}");
            if self
                .step(true, || api.req(Method::DELETE, &path))
                .await
                .is_some()
            {
                self.advance(n, Stage::Deleted);
            }
            return;
        }
        if i.is_multiple_of(3) {
            return;
        }
        let consume = json!({"owner": owner, "keys": [key]});
        let consumed = self.step(false, || {
            api.req(Method::POST, "/v1/claims/consume").json(&consume)
        });
        if consumed.await.is_none() {
            return;
        }
        self.advance(n, Stage::Consumed);
        if i % 3 == 2 {
            let items = json!({"items": [{"key": key, "reason": "deleted"}]});
            let deleted = self.step(false, || api.req(Method::POST, "/v1/deletes").json(&items));
            if deleted.await.is_some() {
                self.advance(n, Stage::Deleted);
            }
        }
    }

    /// A multipart upload of one small part: start, part, complete.
    async fn multipart(&self, api: &Caller, seed: u64) {
        let size = 1000;
        let start = json!({"filename": "m.bin", "content_type": "application/octet-stream",
                           "size": size});
        let started = self.step(false, || {
            api.req(Method::POST, "/v1/uploads/multipart").json(&start)
        });
        let Some(claim) = started.await else {
            return;
        };
        let (id, key) = (
            claim["id"].as_str().unwrap(),
            claim["key"].as_str().unwrap(),
        );
        let n = self.record(key, Stage::Started);
        let part = format!("/v1/uploads/{id}/parts/1");
        let body = random_bytes(seed, size);
        if self
            .step(false, || api.req(Method::PUT, &part).body(body.clone()))
            .await
            .is_none()
        {
            return;
        }
        self.advance(n, Stage::Part);
        let complete = format!("/v1/uploads/{id}/complete");
        if self
            .step(false, || api.req(Method::POST, &complete))
            .await
            .is_some()
        {
            self.advance(n, Stage::Uploaded);
        }
    }

    /// Sends the request `make` builds until it succeeds, retrying after
    /// each 503, unless the writers are stopped. `gone_is_done`: a 404
    /// after a 503 means the first attempt committed (a discard).
    async fn step(&self, gone_is_done: bool, make: impl Fn() -> RequestBuilder) -> Option<Value> {
        match self.step_inner(gone_is_done, make).await {
            Step::Done(v) => Some(v),
            Step::Refused | Step::Stopped => None,
        }
    }

    async fn step_inner(&self, gone_is_done: bool, make: impl Fn() -> RequestBuilder) -> Step {
        let mut unavailable = false;
        loop {
            let sent = Instant::now();
            let res = make()
                .send()
                .await
                .expect("the API itself stays up and answers within the client's timeout");
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: Value = res.json().await.unwrap_or(Value::Null);
            {
                let mut slowest = self.slowest.lock().unwrap();
                *slowest = (*slowest).max(sent.elapsed());
            }
            if gone_is_done && unavailable && status == 404 {
                self.redone.fetch_add(1, Ordering::Relaxed);
                return Step::Done(body);
            }
            self.answers.lock().unwrap().push(Answer {
                at: self.started.elapsed(),
                status,
                code: body["code"].as_str().map(str::to_owned),
                retry_after,
            });
            match status {
                200..=299 => return Step::Done(body),
                503 if !self.stop.load(Ordering::Relaxed) => {
                    unavailable = true;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                503 => return Step::Stopped,
                _ => return Step::Refused,
            }
        }
    }

    fn record(&self, key: &str, stage: Stage) -> usize {
        let mut items = self.items.lock().unwrap();
        items.push(Item {
            key: key.to_owned(),
            acked: stage,
        });
        items.len() - 1
    }

    fn advance(&self, n: usize, stage: Stage) {
        self.items.lock().unwrap()[n].acked = stage;
    }
}

/// The acknowledged uploads whose state on `pool`'s database is behind
/// what the API acknowledged (a lost write), each with its actual stage.
/// Run before settling (settling expires pending claims).
pub async fn lost_writes(pool: &Pool, prefix: &str, items: &[Item]) -> Vec<(Item, Stage)> {
    let client = pool.get().await.expect("db connection");
    let mut claims = HashMap::new();
    for row in client
        .query(
            "SELECT object_key, status,
                    EXISTS (SELECT 1 FROM claimcheck.upload_parts p WHERE p.claim_id = c.id)
               FROM claimcheck.upload_claims c WHERE starts_with(object_key, $1)",
            &[&prefix],
        )
        .await
        .expect("claims")
    {
        let (key, status, part): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        let stage = match (status.as_str(), part) {
            ("uploaded", _) => Stage::Uploaded,
            (_, true) => Stage::Part,
            _ => Stage::Started,
        };
        claims.insert(key, stage);
    }
    let set = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query(sql, &[&prefix])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<BTreeSet<_>>()
        }
    };
    let registry =
        set("SELECT object_key FROM claimcheck.objects WHERE starts_with(object_key, $1)").await;
    let queued = set(
        "SELECT object_key FROM claimcheck.pending_deletes WHERE starts_with(object_key, $1)
         UNION SELECT object_key FROM public.removed WHERE starts_with(object_key, $1)",
    )
    .await;
    items
        .iter()
        .filter_map(|item| {
            let actual = if let Some(stage) = claims.get(&item.key) {
                *stage
            } else if registry.contains(&item.key) {
                Stage::Consumed
            } else if queued.contains(&item.key) {
                Stage::Deleted
            } else {
                Stage::Missing
            };
            (actual < item.acked).then(|| (item.clone(), actual))
        })
        .collect()
}
