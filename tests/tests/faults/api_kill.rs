//! `kill -9` of the API at a random moment of 50 concurrent chunked uploads,
//! for several seeds, with parts sent through the API or straight to S3 on
//! presigned URLs; then a new API process, clients that resume (with their
//! Idempotency-Key when they never saw their claim) or abandon, expiry,
//! sweep, drain, reap, and the audit.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use claimcheck::tokens::Scope;
use claimcheck_tests::{
    db::TestDb,
    faults::{record_removals, serial, settle_and_check, token, ApiProcess, Caller, S3Target},
    jobs::count,
    stores::{random_body, random_bytes, random_sha256, test_prefix},
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};

const MIB: u64 = 1024 * 1024;
const UPLOADS: usize = 50;
const PART: u64 = 5 * MIB;

/// How a client sends its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parts {
    /// `PUT /v1/uploads/{id}/parts/{n}`: the API streams them to S3.
    ThroughApi,
    /// Presigned by the API, then PUT straight to the S3 server: the API
    /// only sees the presign calls and complete.
    Presigned,
}

#[derive(Debug, Clone, Default)]
struct Client {
    size: u64,
    id: Option<String>,
    parts_done: Vec<u32>,
    completed: bool,
}

/// Starts (or finds again, by Idempotency-Key) the upload of `size` bytes.
async fn init(api: &Caller, size: u64, key: &str) -> Result<Value, String> {
    let res = api
        .req(Method::POST, "/v1/uploads/multipart")
        .header("Idempotency-Key", key)
        .json(
            &json!({"filename": "f.bin", "content_type": "application/octet-stream",
                      "size": size, "part_size": PART}),
        )
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    if status == 201 || status == 200 {
        Ok(body)
    } else {
        Err(format!("init {status}: {body}"))
    }
}

/// Sends part `n`: `len` bytes of the body `seed`, the way `parts` says.
async fn put(
    api: &Caller,
    parts: Parts,
    id: &str,
    n: u32,
    seed: u64,
    len: u64,
) -> Result<(), String> {
    if parts == Parts::Presigned {
        return put_direct(api, id, n, seed, len).await;
    }
    let res = api
        .req(Method::PUT, &format!("/v1/uploads/{id}/parts/{n}"))
        .header("Content-Length", len)
        .header("X-Content-SHA256", random_sha256(seed, len))
        .body(reqwest::Body::wrap_stream(random_body(seed, len)))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match res.status().as_u16() {
        200 => Ok(()),
        s => Err(format!(
            "part {n}: {s} {}",
            res.text().await.unwrap_or_default()
        )),
    }
}

/// Sends part `n` straight to the S3 server on a URL the API presigned.
async fn put_direct(api: &Caller, id: &str, n: u32, seed: u64, len: u64) -> Result<(), String> {
    let res = api
        .req(Method::POST, &format!("/v1/uploads/{id}/parts/{n}/presign"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let presigned: Value = res.json().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("presign {n}: {status} {presigned}"));
    }
    let mut direct = api
        .http
        .put(presigned["url"].as_str().unwrap_or_default())
        .body(random_bytes(seed, len));
    for (k, v) in presigned["headers"].as_object().into_iter().flatten() {
        direct = direct.header(k, v.as_str().unwrap_or_default());
    }
    let res = direct.send().await.map_err(|e| e.to_string())?;
    match res.status().as_u16() {
        200 => Ok(()),
        s => Err(format!("direct part {n}: {s}")),
    }
}

/// Completes the upload `id`.
async fn complete(api: &Caller, id: &str) -> Result<Value, String> {
    let res = api
        .req(Method::POST, &format!("/v1/uploads/{id}/complete"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    if status == 200 {
        Ok(body)
    } else {
        Err(format!("complete {status}: {body}"))
    }
}

fn part_len(size: u64, n: u32) -> u64 {
    if n == 1 {
        PART
    } else {
        size - PART
    }
}

fn seed_of(upload: usize, n: u32) -> u64 {
    (upload as u64) * 10 + u64::from(n)
}

/// One client's upload, recording its progress, until it fails (the API died).
async fn upload(
    api: Arc<Caller>,
    parts: Parts,
    i: usize,
    delay: Duration,
    state: Arc<Mutex<Vec<Client>>>,
    run: u64,
) {
    tokio::time::sleep(delay).await;
    let size = state.lock().unwrap()[i].size;
    let Ok(claim) = init(&api, size, &format!("{run}-{i}")).await else {
        return;
    };
    let id = claim["id"].as_str().unwrap().to_owned();
    state.lock().unwrap()[i].id = Some(id.clone());
    for n in 1..=2u32 {
        if put(&api, parts, &id, n, seed_of(i, n), part_len(size, n))
            .await
            .is_err()
        {
            return;
        }
        state.lock().unwrap()[i].parts_done.push(n);
    }
    if complete(&api, &id).await.is_ok() {
        state.lock().unwrap()[i].completed = true;
    }
}

/// After the restart: find the claim (again by Idempotency-Key when the
/// client never saw it), send the parts the server lacks, complete.
async fn resume(
    api: &Caller,
    parts: Parts,
    i: usize,
    client: &Client,
    run: u64,
) -> Result<(String, bool), String> {
    let id = match &client.id {
        Some(id) => id.clone(),
        None => init(api, client.size, &format!("{run}-{i}")).await?["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    let seen = api
        .req(Method::GET, &format!("/v1/uploads/{id}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let seen: Value = seen.json().await.map_err(|e| e.to_string())?;
    let was_uploaded = seen["status"] == "uploaded";
    if !was_uploaded {
        // The API records the parts it streamed; parts sent straight to S3
        // only the client knows it sent.
        let have: Vec<u32> = match parts {
            Parts::ThroughApi => seen["parts"]
                .as_array()
                .ok_or_else(|| format!("no parts in {seen}"))?
                .iter()
                .filter_map(|p| u32::try_from(p["part_number"].as_u64()?).ok())
                .collect(),
            Parts::Presigned => client.parts_done.clone(),
        };
        for n in 1..=2u32 {
            if !have.contains(&n) {
                put(api, parts, &id, n, seed_of(i, n), part_len(client.size, n)).await?;
            }
        }
    }
    let done = complete(api, &id).await?;
    let expected = claimcheck::domain::composite_sha256(
        [1u32, 2]
            .iter()
            .map(|&n| random_sha256(seed_of(i, n), part_len(client.size, n)))
            .collect::<Vec<_>>()
            .iter()
            .map(|d| Some(d.as_str())),
    );
    // The API never sees the bytes of a part sent straight to S3.
    let expected = expected.filter(|_| parts == Parts::ThroughApi);
    if done["sha256"].as_str() != expected.as_deref() || done["size"] != client.size {
        return Err(format!("upload {i} completed wrong: {done}"));
    }
    Ok((done["key"].as_str().unwrap().to_owned(), was_uploaded))
}

async fn one_run(parts: Parts, seed: u64) {
    let db = TestDb::new().await;
    record_removals(&db.pool).await;
    let prefix = test_prefix();
    let s3 = S3Target::shared();
    let env = s3.env(&prefix);
    let token = token(&db.pool, "alice", &[Scope::Upload, Scope::Consume]).await;
    let mut first = ApiProcess::spawn(&db.url, &env).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let clients: Vec<Client> = (0..UPLOADS)
        .map(|_| Client {
            size: PART + rng.random_range(1..=MIB),
            ..Client::default()
        })
        .collect();
    let total_bytes: u64 = clients.iter().map(|c| c.size).sum();
    let state = Arc::new(Mutex::new(clients));
    let api = Arc::new(Caller::new(&first.base, &token));
    let started = Instant::now();
    let tasks: Vec<_> = (0..UPLOADS)
        .map(|i| {
            let delay = Duration::from_millis(rng.random_range(0..1500));
            tokio::spawn(upload(api.clone(), parts, i, delay, state.clone(), seed))
        })
        .collect();
    let kill_at = Duration::from_millis(rng.random_range(300..3000));
    tokio::time::sleep(kill_at).await;
    first.kill9().await;
    for t in tasks {
        t.await.unwrap();
    }
    let at_kill = state.lock().unwrap().clone();
    let completed = at_kill.iter().filter(|c| c.completed).count();
    let with_claim = at_kill.iter().filter(|c| c.id.is_some()).count();
    let in_flight = with_claim - completed;
    let pending = count(
        &db,
        "SELECT count(*) FROM claimcheck.upload_claims WHERE status = 'pending'",
    )
    .await;
    let uploaded = count(
        &db,
        "SELECT count(*) FROM claimcheck.upload_claims WHERE status = 'uploaded'",
    )
    .await;
    let part_rows = count(&db, "SELECT count(*) FROM claimcheck.upload_parts").await;
    let no_session = count(
        &db,
        "SELECT count(*) FROM claimcheck.upload_claims WHERE upload_id IS NULL",
    )
    .await;

    // A new process; two clients in three come back, the others abandon.
    let second = ApiProcess::spawn(&db.url, &env).await;
    let api = Caller::new(&second.base, &token);
    let mut resumed = 0;
    let mut already_uploaded = 0;
    let mut kept = Vec::new();
    for (i, client) in at_kill.iter().enumerate() {
        if client.completed || i % 3 == 0 {
            continue;
        }
        let (key, was) = resume(&api, parts, i, client, seed)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: upload {i} ({client:?}) resumes: {e}"));
        resumed += 1;
        already_uploaded += usize::from(was);
        kept.push(key);
    }
    // Business code adopts every other resumed upload.
    let adopt: Vec<&String> = kept.iter().step_by(2).collect();
    let res = api
        .req(Method::POST, "/v1/claims/consume")
        .json(&json!({"owner": "alice", "keys": adopt}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // Abandoned uploads the first process had finished (the client never
    // heard) stay as uploaded claims until their unconsumed TTL.
    let abandoned: Vec<uuid::Uuid> = at_kill
        .iter()
        .enumerate()
        .filter(|(i, c)| !c.completed && i % 3 == 0)
        .filter_map(|(_, c)| c.id.as_deref()?.parse().ok())
        .collect();
    let abandoned_uploaded: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM claimcheck.upload_claims WHERE status = 'uploaded' AND id = ANY($1)",
            &[&abandoned],
        )
        .await
        .unwrap()
        .get(0);
    let (settled, checked) = settle_and_check(&db.pool, &db.url, &s3, &prefix).await;
    assert!(second.panics().is_empty(), "{:?}", second.panics());
    assert_eq!(
        checked.registry + checked.uploaded,
        completed + resumed + abandoned_uploaded as usize + settled.recovered,
        "every finished upload is an object"
    );
    eprintln!(
        "FAULT api-kill {parts:?} seed={seed}: {UPLOADS} uploads ({} MiB) killed at {kill_at:?} (test time {:.1?}): \
         {completed} completed, {in_flight} in flight with a claim, {} without; db at kill: \
         {pending} pending ({no_session} without session id), {uploaded} uploaded, {part_rows} part rows; \
         resumed {resumed} ({already_uploaded} already uploaded), abandoned {}; {settled}; \
         after: {} objects = {} registry + {} claims, deletes done {}",
        total_bytes / MIB,
        started.elapsed(),
        UPLOADS - with_claim,
        UPLOADS - completed - resumed,
        checked.objects,
        checked.registry,
        checked.uploaded,
        checked.deletes_done,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_api_during_50_chunked_uploads() {
    let _serial = serial().await;
    for seed in [1, 2, 3] {
        one_run(Parts::ThroughApi, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_api_during_50_uploads_with_presigned_parts() {
    let _serial = serial().await;
    for seed in [4, 5] {
        one_run(Parts::Presigned, seed).await;
    }
}
