//! Clients that stall mid-body (slow loris) and clients that lie about
//! Content-Length: the API cuts the stalled ones after
//! CLAIMCHECK_BODY_IDLE_TIMEOUT, keeps serving others meanwhile, stores
//! nothing for either, and its file descriptors and memory stay bounded.

use std::time::{Duration, Instant};

use claimcheck::tokens::Scope;
use claimcheck_tests::{
    db::TestDb,
    faults::{serial, settle_and_check, token, ApiProcess, S3Target},
    jobs::count,
    stores::{random_bytes, test_prefix},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const STALLED_SINGLE: usize = 40;
const STALLED_PARTS: usize = 10;
const MIB: usize = 1024 * 1024;

async fn open(addr: &str, head: &str, token: &str, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!("{head}\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s
}

/// Reads until the server answers and/or closes; returns the answer and
/// how long that took (panics after `limit`).
async fn cut(mut s: TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), s.read(&mut buf)).await {
            Err(_) => panic!(
                "connection neither answered nor closed within {limit:?}: {}",
                String::from_utf8_lossy(&answer)
            ),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_loris_and_lying_lengths_store_nothing_and_stay_bounded() {
    let _serial = serial().await;
    let db = TestDb::new().await;
    let prefix = test_prefix();
    let s3 = S3Target::shared();
    let mut env = s3.env(&prefix);
    env.push(("CLAIMCHECK_BODY_IDLE_TIMEOUT", "2s".into()));
    let mut api = ApiProcess::spawn(&db.url, &env).await;
    let token = token(&db.pool, "alice", &[Scope::Upload, Scope::Consume]).await;
    let http = reqwest::Client::new();
    let addr = api.base.trim_start_matches("http://").to_owned();
    // Warm up (one upload), then the baseline.
    let warm = http
        .post(format!("{}/v1/uploads?filename=w.bin", api.base))
        .bearer_auth(&token)
        .header("Content-Type", "application/octet-stream")
        .body(random_bytes(1, 64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 201);
    let (fds_before, rss_before) = (api.open_fds(), api.rss_kib());

    // Slow loris: headers and a few bytes, then nothing.
    let mut stalled = Vec::new();
    for _ in 0..STALLED_SINGLE {
        let head = format!(
            "POST /v1/uploads?filename=s.bin HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {MIB}"
        );
        stalled.push(open(&addr, &head, &token, &[1u8; 1000]).await);
    }
    let mut part_ids = Vec::new();
    for _ in 0..STALLED_PARTS {
        let claim: serde_json::Value = http
            .post(format!("{}/v1/uploads/multipart", api.base))
            .bearer_auth(&token)
            .json(
                &serde_json::json!({"filename": "p.bin", "content_type": "application/octet-stream",
                "size": 6 * MIB, "part_size": 5 * MIB}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = claim["id"].as_str().unwrap().to_owned();
        let head = format!(
            "PUT /v1/uploads/{id}/parts/1 HTTP/1.1\r\nContent-Length: {}",
            5 * MIB
        );
        stalled.push(open(&addr, &head, &token, &[2u8; 1000]).await);
        part_ids.push(id);
    }
    let stalled_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fds_stalled = api.open_fds();
    // Others are served meanwhile.
    let mut served = Vec::new();
    for i in 0..5u64 {
        let t = Instant::now();
        let res = http
            .post(format!("{}/v1/uploads?filename=ok.bin", api.base))
            .bearer_auth(&token)
            .header("Content-Type", "application/octet-stream")
            .body(random_bytes(10 + i, 256 * 1024))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            201,
            "served while {} clients stall",
            stalled.len()
        );
        served.push(t.elapsed());
    }
    let cuts =
        futures::future::join_all(stalled.into_iter().map(|s| cut(s, Duration::from_secs(8))))
            .await;
    let cut_after = stalled_at.elapsed();
    for (answer, _) in &cuts {
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "a stalled body is refused or the connection closed: {answer}"
        );
    }
    let answered = cuts.iter().filter(|(a, _)| !a.is_empty()).count();
    let slowest_cut = cuts.iter().map(|(_, d)| *d).max().unwrap();
    assert!(
        slowest_cut < Duration::from_secs(6),
        "cut after about the idle timeout: {slowest_cut:?}"
    );
    // Nothing stored for them: no claim for the single shots (6 = warm-up +
    // 5 served), no part rows, the chunked claims still pending.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM claimcheck.upload_claims WHERE status = 'uploaded'"
        )
        .await,
        6
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM claimcheck.upload_claims WHERE status = 'pending'"
        )
        .await,
        STALLED_PARTS as i64
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM claimcheck.upload_parts").await,
        0
    );

    // Lying lengths. Shorter than declared, then the client closes.
    let mut liars = Vec::new();
    for _ in 0..20 {
        let head = format!(
            "POST /v1/uploads?filename=l.bin HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {MIB}\r\nConnection: close"
        );
        let mut s = open(&addr, &head, &token, &random_bytes(3, 100_000)).await;
        s.shutdown().await.unwrap();
        liars.push(s);
    }
    for id in &part_ids[..5] {
        // A part whose declared length is the right one, but the body stops short.
        let head = format!(
            "PUT /v1/uploads/{id}/parts/2 HTTP/1.1\r\nContent-Length: {MIB}\r\nConnection: close"
        );
        let mut s = open(&addr, &head, &token, &random_bytes(4, 1000)).await;
        s.shutdown().await.unwrap();
        liars.push(s);
    }
    for (answer, _) in
        futures::future::join_all(liars.into_iter().map(|s| cut(s, Duration::from_secs(8)))).await
    {
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    }
    // Longer than declared: exactly the declared bytes are the object; the
    // rest is read as the next request, which is not one.
    let head = "POST /v1/uploads?filename=long.bin HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 10";
    let s = open(&addr, head, &token, &[7u8; 5000]).await;
    let (answer, _) = cut(s, Duration::from_secs(8)).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 201").count(), 1, "{answer}");
    // A part declared longer than its size: refused before a byte is read.
    let head = format!(
        "PUT /v1/uploads/{}/parts/2 HTTP/1.1\r\nContent-Length: {}\r\nConnection: close",
        part_ids[5],
        2 * MIB
    );
    let s = open(&addr, &head, &token, &[1u8; 1000]).await;
    let (answer, _) = cut(s, Duration::from_secs(8)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let (fds_after, rss_after) = (api.open_fds(), api.rss_kib());
    assert_eq!(
        count(&db, "SELECT count(*) FROM claimcheck.upload_parts").await,
        0,
        "no part stored"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM claimcheck.upload_claims WHERE status = 'uploaded'"
        )
        .await,
        7,
        "only the complete bodies (and the 10 declared bytes) became uploads"
    );
    assert_eq!(
        count(
            &db,
            "SELECT max(size) FROM claimcheck.upload_claims WHERE filename = 'long.bin'"
        )
        .await,
        10
    );
    // Every stalled socket and its store request is gone; what may stay
    // is pooled (up to 16 PostgreSQL connections, keep-alive S3 connections).
    assert!(
        fds_after + (STALLED_SINGLE + STALLED_PARTS) <= fds_stalled && fds_after <= fds_before + 32,
        "descriptors come back: {fds_before} -> {fds_stalled} -> {fds_after}"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory bounded: {rss_before} -> {rss_after} KiB"
    );
    assert!(api.alive() && api.panics().is_empty(), "{:?}", api.panics());

    let (settled, checked) = settle_and_check(&db.pool, &db.url, &s3, &prefix).await;
    eprintln!(
        "FAULT slow-clients: {STALLED_SINGLE} single-shot + {STALLED_PARTS} part bodies stalled after 1000 bytes \
         with a 2 s idle timeout: all cut within {slowest_cut:.1?} ({answered} answered 4xx, the rest closed; \
         all done {cut_after:.1?} after the stall); 5 other uploads served meanwhile in {served:?}; \
         fds {fds_before} -> {fds_stalled} (stalled) -> {fds_after}, RSS {rss_before} -> {rss_after} KiB; \
         25 short bodies and 2 long ones stored nothing beyond the declared bytes; settle: expired {}, drained {}; \
         {} objects, all accounted for",
        settled.expired,
        settled.drained,
        checked.objects,
    );
}
