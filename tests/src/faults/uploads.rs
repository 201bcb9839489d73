//! Upload clients that do what a careful client does when the service says
//! "try again": chunked REST uploads (init, parts, complete) and tus uploads
//! (create, PATCHes, a HEAD to resume after a refusal), with 5 MiB parts.
//! Every request is bounded in time, so a hang fails the upload instead of
//! the test waiting forever, and every refusal met is recorded.

use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use claimcheck::domain::composite_sha256;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};

use super::load::{status_and_code, Caller};
use crate::stores::{random_range_chunks, random_sha256_ranges};

const MIB: u64 = 1024 * 1024;
/// The part size the API must be started with (`CLAIMCHECK_PART_SIZE`).
pub const PART: u64 = 5 * MIB;
/// tus chunks that are no multiple of the part size: the bytes short of a
/// part wait in PostgreSQL (the tail) until the next chunk, as with any
/// client's chunk size.
const TUS_CHUNK: u64 = 3 * MIB;
/// One request that takes longer is a hang, and fails the upload.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The API answers `Retry-After: 5`; the clients come back sooner so the
/// scenario stays short (a retry too early is only refused again).
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// An upload still refused after this long has failed.
const GIVE_UP: Duration = Duration::from_secs(90);

/// How an upload is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /v1/uploads/multipart`, `PUT .../parts/{n}`, `POST .../complete`.
    Multipart,
    /// `POST /v1/tus`, then `PATCH`es of [`TUS_CHUNK`] bytes.
    Tus,
}

/// An upload to make: `size` bytes of the body `seed`.
#[derive(Debug, Clone)]
pub struct Upload {
    /// How it is sent.
    pub protocol: Protocol,
    /// The body's seed ([`crate::stores::random_body`]).
    pub seed: u64,
    /// Its size.
    pub size: u64,
}

/// A non-2xx answer a client met.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// When, since the clients' epoch.
    pub at: Duration,
    /// The request (`init`, `part`, `complete`, `create`, `patch`, ...).
    pub step: &'static str,
    /// Its status.
    pub status: u16,
    /// The problem's `code`.
    pub code: Option<String>,
    /// Its Retry-After header.
    pub retry_after: Option<String>,
}

impl Refusal {
    /// What the contract tells a client to retry: 503 `unavailable` with
    /// Retry-After (the store or PostgreSQL is unreachable), or 423 `locked`
    /// (a tus upload another request still writes).
    pub fn retryable(&self) -> bool {
        let unavailable = self.status == 503
            && self.code.as_deref() == Some("unavailable")
            && self.retry_after.is_some();
        unavailable || (self.status == 423 && self.code.as_deref() == Some("locked"))
    }
}

/// An upload that completed, and what it took.
#[derive(Debug, Clone)]
pub struct Finished {
    /// What was uploaded.
    pub upload: Upload,
    /// Its object key.
    pub key: String,
    /// The refusals it met (each retried).
    pub refusals: Vec<Refusal>,
    /// Requests sent.
    pub requests: usize,
    /// When it completed, since the epoch.
    pub done_at: Duration,
    /// Its slowest request, from sending to the answer's headers.
    pub slowest: Duration,
}

/// One client's requests: counts them, records refusals, keeps the deadline.
struct Session<'a> {
    api: &'a Caller,
    epoch: Instant,
    deadline: Instant,
    refusals: Vec<Refusal>,
    requests: usize,
    slowest: Duration,
}

impl Session<'_> {
    /// Sends `request` once: the response when it is a success, else the
    /// refusal. No answer within [`REQUEST_TIMEOUT`] (or none at all) is an
    /// error: the API must answer whatever the store does.
    async fn once(
        &mut self,
        step: &'static str,
        request: RequestBuilder,
    ) -> Result<Result<Response, Refusal>, String> {
        if Instant::now() > self.deadline {
            return Err(format!("{step}: given up after {GIVE_UP:?}"));
        }
        self.requests += 1;
        let sent = Instant::now();
        let res = request
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("{step}: no answer: {e:?}"))?;
        self.slowest = self.slowest.max(sent.elapsed());
        if res.status().is_success() {
            return Ok(Ok(res));
        }
        let (status, code, retry_after) = status_and_code(res).await;
        Ok(Err(Refusal {
            at: self.epoch.elapsed(),
            step,
            status,
            code,
            retry_after,
        }))
    }

    /// Records a refusal the client retries, and waits before the retry;
    /// any other refusal is an error.
    async fn retry_after(&mut self, refusal: Refusal) -> Result<(), String> {
        if !refusal.retryable() {
            return Err(format!("{}: not retryable: {refusal:?}", refusal.step));
        }
        self.refusals.push(refusal);
        tokio::time::sleep(RETRY_PAUSE).await;
        Ok(())
    }

    /// Sends what `make` builds until it succeeds, retrying refusals the
    /// contract says to retry.
    async fn send(
        &mut self,
        step: &'static str,
        make: impl Fn(&Caller) -> RequestBuilder,
    ) -> Result<Response, String> {
        loop {
            match self.once(step, make(self.api)).await? {
                Ok(res) => return Ok(res),
                Err(refusal) => self.retry_after(refusal).await?,
            }
        }
    }
}

/// Bytes `range` of the body `seed`, streamed.
fn body(seed: u64, range: std::ops::Range<u64>) -> reqwest::Body {
    let chunks = random_range_chunks(seed, range).map(Ok::<Bytes, std::io::Error>);
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

/// The byte ranges of the parts of a `size`-byte upload cut every [`PART`]
/// bytes (how the API cuts both REST parts and tus chunks).
fn part_ranges(size: u64) -> Vec<std::ops::Range<u64>> {
    (0..size.div_ceil(PART))
        .map(|k| k * PART..((k + 1) * PART).min(size))
        .collect()
}

/// Makes `upload` through `api`, retrying what the contract says to retry;
/// `idempotency_key` makes a retried start find the first one's claim.
/// Checks that the claim it ends with is `uploaded`, of the size sent, with
/// the composite SHA-256 of the bytes sent.
pub async fn upload(
    api: &Caller,
    upload: Upload,
    idempotency_key: &str,
    epoch: Instant,
) -> Result<Finished, String> {
    let mut s = Session {
        api,
        epoch,
        deadline: Instant::now() + GIVE_UP,
        refusals: Vec::new(),
        requests: 0,
        slowest: Duration::ZERO,
    };
    let claim = match upload.protocol {
        Protocol::Multipart => multipart(&mut s, &upload, idempotency_key).await?,
        Protocol::Tus => tus(&mut s, &upload, idempotency_key).await?,
    };
    let digests: Vec<String> = part_ranges(upload.size)
        .into_iter()
        .map(|r| random_sha256_ranges(&[(upload.seed, r)]))
        .collect();
    let expected = composite_sha256(digests.iter().map(|d| Some(d.as_str())));
    if claim["status"] != "uploaded"
        || claim["size"] != upload.size
        || claim["sha256"].as_str() != expected.as_deref()
    {
        return Err(format!("completed wrong: {claim} (expected {expected:?})"));
    }
    Ok(Finished {
        key: claim["key"].as_str().unwrap_or_default().to_owned(),
        upload,
        refusals: s.refusals,
        requests: s.requests,
        done_at: epoch.elapsed(),
        slowest: s.slowest,
    })
}

async fn multipart(s: &mut Session<'_>, upload: &Upload, key: &str) -> Result<Value, String> {
    let claim: Value = s
        .send("init", |api| {
            api.req(Method::POST, "/v1/uploads/multipart")
                .header("Idempotency-Key", key)
                .json(
                    &json!({"filename": "f.bin", "content_type": "application/octet-stream",
                              "size": upload.size, "part_size": PART}),
                )
        })
        .await?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let id = claim["id"].as_str().ok_or(format!("no id: {claim}"))?;
    for (n, range) in part_ranges(upload.size).into_iter().enumerate() {
        let sha = random_sha256_ranges(&[(upload.seed, range.clone())]);
        // A part refused midway is sent again whole: it replaces whatever
        // the first attempt left.
        s.send("part", |api| {
            api.req(Method::PUT, &format!("/v1/uploads/{id}/parts/{}", n + 1))
                .header("Content-Length", range.end - range.start)
                .header("X-Content-SHA256", &sha)
                .body(body(upload.seed, range.clone()))
        })
        .await?;
    }
    s.send("complete", |api| {
        api.req(Method::POST, &format!("/v1/uploads/{id}/complete"))
    })
    .await?
    .json()
    .await
    .map_err(|e| e.to_string())
}

fn tus_req(api: &Caller, method: Method, path: &str) -> RequestBuilder {
    api.req(method, path).header("Tus-Resumable", "1.0.0")
}

fn header_u64(res: &Response, name: &str) -> Result<u64, String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .ok_or(format!("no {name} in {res:?}"))
}

async fn tus(s: &mut Session<'_>, upload: &Upload, key: &str) -> Result<Value, String> {
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let metadata = format!(
        "filename {},filetype {}",
        b64("f.bin"),
        b64("application/octet-stream")
    );
    let created = s
        .send("create", |api| {
            tus_req(api, Method::POST, "/v1/tus")
                .header("Upload-Length", upload.size)
                .header("Upload-Metadata", &metadata)
                .header("Idempotency-Key", key)
        })
        .await?;
    let location = created
        .headers()
        .get("Location")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Location")?;
    // Path-only, or absolute when the API knows its public URL.
    let path = location[location.find("/v1/tus/").ok_or("odd Location")?..].to_owned();
    let mut offset = 0;
    while offset < upload.size {
        let end = (offset + TUS_CHUNK).min(upload.size);
        let patch = tus_req(s.api, Method::PATCH, &path)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset)
            .header("Content-Length", end - offset)
            .body(body(upload.seed, offset..end));
        match s.once("patch", patch).await? {
            Ok(res) => {
                offset = header_u64(&res, "Upload-Offset")?;
                if offset != end {
                    return Err(format!("PATCH to {end} answered offset {offset}"));
                }
            }
            Err(refusal) => {
                s.retry_after(refusal).await?;
                // What a tus client does after a failed PATCH: ask where to
                // resume. HEAD reads PostgreSQL only: never refused here.
                let head = s
                    .send("head", |api| tus_req(api, Method::HEAD, &path))
                    .await?;
                offset = header_u64(&head, "Upload-Offset")?;
            }
        }
    }
    let id = path.rsplit('/').next().unwrap_or_default().to_owned();
    s.send("status", |api| {
        api.req(Method::GET, &format!("/v1/uploads/{id}"))
    })
    .await?
    .json()
    .await
    .map_err(|e| e.to_string())
}
