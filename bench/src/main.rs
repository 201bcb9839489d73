//! `claimcheck-bench`: the load client `bench/run` drives. Each subcommand runs
//! one benchmark (or prepares one) and prints Markdown table rows or plain
//! `name=value` lines for the script to put in BENCHMARKS.md.
//!
//! One client for both sides of each comparison, so a ratio compares the
//! server paths and not two clients: the same reqwest client sends the bytes
//! to the API and, with presigned URLs, straight to the S3 server.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use aws_sdk_s3::{
    config::{
        BehaviorVersion, Credentials, Region, RequestChecksumCalculation,
        ResponseChecksumValidation,
    },
    presigning::PresigningConfig,
    primitives::ByteStream as SdkByteStream,
};
use bytes::{Bytes, BytesMut};
use clap::{Args, Parser, Subcommand};
use futures::{stream, StreamExt, TryStreamExt};
use rand::RngCore;
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;
/// Bytes per body chunk handed to the HTTP client.
const CHUNK: u64 = MIB;
/// Random bytes the bodies are cut from.
const POOL: usize = 8 << 20;

#[derive(Parser)]
#[command(name = "claimcheck-bench", about = "Load client for bench/run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Single-shot and multipart uploads through the API against the same
    /// client PUTting straight to S3 (presigned URLs), alternated.
    Throughput(ThroughputArgs),
    /// Concurrent single-shot uploads through the API while sampling the API
    /// process's resident memory.
    Memory(MemoryArgs),
    /// `POST /v1/uploads/multipart` at a fixed concurrency: rate and latency.
    InitRate(InitRateArgs),
    /// Creates multipart sessions straight through the S3 API; writes
    /// `key<TAB>upload_id` lines.
    S3Sessions(S3FillArgs),
    /// Creates small objects straight through the S3 API; writes their keys.
    S3Objects(S3FillArgs),
    /// Creates small files under a filesystem store root; writes their keys.
    FsFiles(FsFilesArgs),
}

#[derive(Args, Clone)]
struct Api {
    /// The API's base URL.
    #[arg(long)]
    api: String,
    /// A token with the `upload` scope.
    #[arg(long, env = "BENCH_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Args, Clone)]
struct S3 {
    #[arg(long, env = "CLAIMCHECK_TEST_S3_ENDPOINT")]
    s3_endpoint: String,
    #[arg(long, env = "CLAIMCHECK_TEST_S3_BUCKET")]
    s3_bucket: String,
    #[arg(long, env = "CLAIMCHECK_TEST_S3_REGION")]
    s3_region: String,
    #[arg(long, env = "CLAIMCHECK_TEST_S3_ACCESS_KEY", hide_env_values = true)]
    s3_access_key: String,
    #[arg(long, env = "CLAIMCHECK_TEST_S3_SECRET_KEY", hide_env_values = true)]
    s3_secret_key: String,
}

#[derive(Args)]
struct ThroughputArgs {
    #[command(flatten)]
    api: Api,
    #[command(flatten)]
    s3: S3,
    /// Object size in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    size: u64,
    /// Part size of the multipart uploads.
    #[arg(long, default_value_t = 16 << 20)]
    part_size: u64,
    /// Parts in flight.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Rounds (each round: API then direct, single-shot then multipart).
    #[arg(long, default_value_t = 2)]
    reps: usize,
}

#[derive(Args)]
struct MemoryArgs {
    #[command(flatten)]
    api: Api,
    /// The API process to watch.
    #[arg(long)]
    pid: u32,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    #[arg(long, default_value_t = 256 << 20)]
    size: u64,
}

#[derive(Args)]
struct InitRateArgs {
    #[command(flatten)]
    api: Api,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20)]
    secs: u64,
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
}

#[derive(Args)]
struct S3FillArgs {
    #[command(flatten)]
    s3: S3,
    #[arg(long)]
    count: u64,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Stop creating after this many seconds (the count made is reported).
    #[arg(long, default_value_t = 600)]
    max_secs: u64,
    /// Key prefix (ends with `/`).
    #[arg(long)]
    prefix: String,
    /// Where to write the keys.
    #[arg(long)]
    out: String,
}

#[derive(Args)]
struct FsFilesArgs {
    #[arg(long)]
    root: String,
    #[arg(long)]
    prefix: String,
    #[arg(long)]
    count: u64,
    #[arg(long)]
    out: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Throughput(a) => throughput(a).await,
        Command::Memory(a) => memory(a).await,
        Command::InitRate(a) => init_rate(a).await,
        Command::S3Sessions(a) => s3_fill(a, true).await,
        Command::S3Objects(a) => s3_fill(a, false).await,
        Command::FsFiles(a) => fs_files(a),
    }
}

// --- bodies -----------------------------------------------------------------

fn pool() -> &'static [u8] {
    static POOL_BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    POOL_BYTES.get_or_init(|| {
        let mut v = vec![0u8; POOL];
        rand::rng().fill_bytes(&mut v);
        v
    })
}

/// A body of `len` random-looking bytes; every 1 MiB chunk starts with
/// `nonce` and its index, so the S3 server cannot deduplicate blocks.
fn body(len: u64, nonce: u64) -> reqwest::Body {
    let chunks = len.div_ceil(CHUNK);
    let s = stream::iter(0..chunks).map(move |i| {
        let n = CHUNK.min(len - i * CHUNK) as usize;
        let start = ((i as usize).wrapping_mul(4099 * 64)) % (POOL - CHUNK as usize);
        let mut b = BytesMut::from(&pool()[start..start + n]);
        let mut mark = [0u8; 16];
        mark[..8].copy_from_slice(&nonce.to_le_bytes());
        mark[8..].copy_from_slice(&i.to_le_bytes());
        let m = mark.len().min(n);
        b[..m].copy_from_slice(&mark[..m]);
        Ok::<Bytes, std::io::Error>(b.freeze())
    });
    reqwest::Body::wrap_stream(s)
}

fn nonce() -> u64 {
    rand::rng().next_u64()
}

fn http() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?)
}

async fn s3_client(s3: &S3) -> aws_sdk_s3::Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(s3.s3_region.clone()))
        .credentials_provider(Credentials::new(
            &s3.s3_access_key,
            &s3.s3_secret_key,
            None,
            None,
            "bench",
        ))
        .load()
        .await;
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .endpoint_url(&s3.s3_endpoint)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

async fn expect_status(res: reqwest::Response, want: u16, what: &str) -> Result<Value> {
    let status = res.status().as_u16();
    let text = res.text().await?;
    ensure!(status == want, "{what}: HTTP {status}: {text}");
    Ok(if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    })
}

// --- 1. throughput ----------------------------------------------------------

async fn api_single(http: &reqwest::Client, api: &Api, size: u64) -> Result<()> {
    let res = http
        .post(format!("{}/v1/uploads?filename=bench.bin", api.api))
        .bearer_auth(&api.token)
        .header("content-type", "application/octet-stream")
        .header("content-length", size)
        .body(body(size, nonce()))
        .send()
        .await?;
    expect_status(res, 201, "POST /v1/uploads").await.map(drop)
}

async fn direct_single(
    http: &reqwest::Client,
    s3c: &aws_sdk_s3::Client,
    bucket: &str,
    size: u64,
) -> Result<()> {
    let key = format!("bench/direct/{}.bin", uuid::Uuid::now_v7());
    let presigned = s3c
        .put_object()
        .bucket(bucket)
        .key(&key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(3600))?)
        .await?;
    let mut req = http.put(presigned.uri());
    for (k, v) in presigned.headers() {
        req = req.header(k, v);
    }
    let res = req
        .header("content-length", size)
        .body(body(size, nonce()))
        .send()
        .await?;
    expect_status(res, 200, "direct PutObject").await.map(drop)
}

/// Multipart through the API; `presigned` sends the parts straight to S3
/// with URLs from the API's presign endpoint instead.
async fn multipart(
    http: &reqwest::Client,
    api: &Api,
    size: u64,
    part_size: u64,
    in_flight: usize,
    presigned: bool,
) -> Result<()> {
    let res = http
        .post(format!("{}/v1/uploads/multipart", api.api))
        .bearer_auth(&api.token)
        .json(
            &json!({"filename": "bench.bin", "content_type": "application/octet-stream",
                      "size": size, "part_size": part_size}),
        )
        .send()
        .await?;
    let claim = expect_status(res, 201, "POST /v1/uploads/multipart").await?;
    let id = claim["id"].as_str().context("claim id")?.to_owned();
    let count = claim["part_count"].as_u64().context("part_count")?;
    let ps = claim["part_size"].as_u64().context("part_size")?;
    let n0 = nonce();
    stream::iter(1..=count)
        .map(|n| {
            let id = id.clone();
            async move {
                let len = ps.min(size - (n - 1) * ps);
                let part_body = body(len, n0 ^ (n << 48));
                if presigned {
                    let res = http
                        .post(format!("{}/v1/uploads/{id}/parts/{n}/presign", api.api))
                        .bearer_auth(&api.token)
                        .send()
                        .await?;
                    let p = expect_status(res, 200, "presign").await?;
                    let mut req = http.put(p["url"].as_str().context("presign url")?);
                    if let Some(h) = p["headers"].as_object() {
                        for (k, v) in h {
                            req = req.header(k.as_str(), v.as_str().unwrap_or_default());
                        }
                    }
                    let res = req
                        .header("content-length", len)
                        .body(part_body)
                        .send()
                        .await?;
                    expect_status(res, 200, "presigned UploadPart").await?;
                } else {
                    let res = http
                        .put(format!("{}/v1/uploads/{id}/parts/{n}", api.api))
                        .bearer_auth(&api.token)
                        .header("content-length", len)
                        .body(part_body)
                        .send()
                        .await?;
                    expect_status(res, 200, "PUT part").await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(in_flight)
        .try_collect::<Vec<()>>()
        .await?;
    let res = http
        .post(format!("{}/v1/uploads/{id}/complete", api.api))
        .bearer_auth(&api.token)
        .send()
        .await?;
    expect_status(res, 200, "complete").await.map(drop)
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

async fn timed<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<Duration> {
    let t = Instant::now();
    f.await?;
    Ok(t.elapsed())
}

async fn throughput(a: ThroughputArgs) -> Result<()> {
    let http = http()?;
    let s3c = s3_client(&a.s3).await;
    pool();
    // Warm up connections and the API's pools with a small upload each way.
    api_single(&http, &a.api, MIB).await?;
    direct_single(&http, &s3c, &a.s3.s3_bucket, MIB).await?;
    let mut single = Vec::new();
    let mut multi = Vec::new();
    for _ in 0..a.reps {
        let api = timed(api_single(&http, &a.api, a.size)).await?;
        let direct = timed(direct_single(&http, &s3c, &a.s3.s3_bucket, a.size)).await?;
        single.push((api, direct));
        let api = timed(multipart(
            &http,
            &a.api,
            a.size,
            a.part_size,
            a.in_flight,
            false,
        ))
        .await?;
        let direct = timed(multipart(
            &http,
            &a.api,
            a.size,
            a.part_size,
            a.in_flight,
            true,
        ))
        .await?;
        multi.push((api, direct));
    }
    let row = |name: &str, runs: &[(Duration, Duration)]| {
        for (i, (api, direct)) in runs.iter().enumerate() {
            let (ta, td) = (mib_s(a.size, *api), mib_s(a.size, *direct));
            println!(
                "| {name} | {} | {:.2} s, {ta:.0} MiB/s | {:.2} s, {td:.0} MiB/s | **{:.2}** |",
                i + 1,
                api.as_secs_f64(),
                direct.as_secs_f64(),
                ta / td
            );
        }
    };
    row("single-shot", &single);
    row(
        &format!(
            "multipart, {} MiB parts, {} in flight",
            a.part_size / MIB,
            a.in_flight
        ),
        &multi,
    );
    Ok(())
}

// --- 2. memory ---------------------------------------------------------------

fn proc_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} of pid {pid}"))
}

async fn memory(a: MemoryArgs) -> Result<()> {
    let http = http()?;
    pool();
    // Warm-up: one small upload, so the baseline has the pools and buffers a
    // served request leaves behind.
    api_single(&http, &a.api, MIB).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = proc_kib(a.pid, "VmRSS:")?;
    let hwm_before = proc_kib(a.pid, "VmHWM:")?;
    let done = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(base));
    let sampler = {
        let (done, max_rss, pid) = (done.clone(), max_rss.clone(), a.pid);
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(kib) = proc_kib(pid, "VmRSS:") {
                    max_rss.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let t = Instant::now();
    let results = futures::future::join_all(
        (0..a.clients).map(|_| async { timed(api_single(&http, &a.api, a.size)).await }),
    )
    .await;
    let took = t.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("memory: {failed} uploads failed, first: {e:#}");
        let first = format!("{e:#}");
        println!(
            "first_error={}",
            first.chars().take(400).collect::<String>()
        );
    }
    let hwm = proc_kib(a.pid, "VmHWM:")?;
    let peak = hwm.max(max_rss.load(Ordering::Relaxed));
    let delta = peak.saturating_sub(base);
    println!("clients={}", a.clients);
    println!("size_mib={}", a.size / MIB);
    println!("failed={failed}");
    println!("secs={:.2}", took.as_secs_f64());
    println!(
        "aggregate_mib_s={:.0}",
        mib_s(a.size * (a.clients - failed) as u64, took)
    );
    println!("baseline_rss_mib={:.1}", base as f64 / 1024.0);
    println!("hwm_before_mib={:.1}", hwm_before as f64 / 1024.0);
    println!("peak_rss_mib={:.1}", peak as f64 / 1024.0);
    println!("delta_mib={:.1}", delta as f64 / 1024.0);
    println!(
        "per_upload_mib={:.2}",
        delta as f64 / 1024.0 / a.clients as f64
    );
    // Failed uploads are reported (and the figures kept): they are a finding.
    Ok(())
}

// --- 4. init rate --------------------------------------------------------------

async fn init_rate(a: InitRateArgs) -> Result<()> {
    let http = http()?;
    let stop_warm = Instant::now() + Duration::from_secs(a.warmup_secs);
    let stop = stop_warm + Duration::from_secs(a.secs);
    // `--token` may list several tokens (comma-separated, one per owner):
    // client i uses token i mod n.
    let tokens: Vec<String> = a.api.token.split(',').map(str::to_owned).collect();
    let workers = (0..a.concurrency).map(|i| {
        let http = http.clone();
        let api = Api {
            api: a.api.api.clone(),
            token: tokens[i % tokens.len()].clone(),
        };
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            loop {
                let t = Instant::now();
                if t >= stop {
                    break;
                }
                let res = http
                    .post(format!("{}/v1/uploads/multipart", api.api))
                    .bearer_auth(&api.token)
                    .json(&json!({"filename": "bench.bin",
                                  "content_type": "application/octet-stream",
                                  "size": 64 * MIB}))
                    .send()
                    .await;
                let ok = match res {
                    Ok(r) if r.status().as_u16() == 201 => r.bytes().await.is_ok(),
                    Ok(r) => {
                        let s = r.status();
                        let text = r.text().await.unwrap_or_default();
                        first_error.get_or_insert(format!("HTTP {s}: {text}"));
                        false
                    }
                    Err(e) => {
                        first_error.get_or_insert(e.to_string());
                        false
                    }
                };
                let end = Instant::now();
                if t >= stop_warm && end <= stop {
                    if ok {
                        lat.push(end - t);
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors, first_error)
        })
    });
    let mut lat = Vec::new();
    let mut errors = 0;
    for w in futures::future::join_all(workers).await {
        let (l, e, first) = w?;
        lat.extend(l);
        errors += e;
        if let Some(first) = first {
            eprintln!("init-rate: error: {first}");
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!("concurrency={}", a.concurrency);
    println!("owners={}", tokens.len());
    println!("secs={}", a.secs);
    println!("ok={}", lat.len());
    println!("errors={errors}");
    println!("rps={:.0}", lat.len() as f64 / a.secs as f64);
    println!("p50_ms={:.1}", pct(0.50));
    println!("p99_ms={:.1}", pct(0.99));
    println!("max_ms={:.1}", pct(1.0));
    Ok(())
}

// --- fills for 3 and 5 -----------------------------------------------------------

async fn s3_fill(a: S3FillArgs, sessions: bool) -> Result<()> {
    let s3c = s3_client(&a.s3).await;
    let deadline = Instant::now() + Duration::from_secs(a.max_secs);
    let t = Instant::now();
    let lines: Vec<String> = stream::iter(0..a.count)
        .take_while(|_| futures::future::ready(Instant::now() < deadline))
        .map(|_| {
            let s3c = s3c.clone();
            let (bucket, prefix) = (a.s3.s3_bucket.clone(), a.prefix.clone());
            async move {
                let key = format!("{prefix}priv/2026/01/01/{}.bin", uuid::Uuid::now_v7());
                if sessions {
                    let out = s3c
                        .create_multipart_upload()
                        .bucket(bucket)
                        .key(&key)
                        .content_type("application/octet-stream")
                        .send()
                        .await?;
                    Ok(format!("{key}\t{}", out.upload_id().context("upload id")?))
                } else {
                    s3c.put_object()
                        .bucket(bucket)
                        .key(&key)
                        .body(SdkByteStream::from(vec![7u8; 1024]))
                        .send()
                        .await?;
                    anyhow::Ok(key)
                }
            }
        })
        .buffer_unordered(a.concurrency)
        .try_collect()
        .await?;
    let took = t.elapsed();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&a.out)?);
    for l in &lines {
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    println!("created={}", lines.len());
    println!("secs={:.1}", took.as_secs_f64());
    println!("per_s={:.0}", lines.len() as f64 / took.as_secs_f64());
    Ok(())
}

fn fs_files(a: FsFilesArgs) -> Result<()> {
    let dir = format!("{}/{}priv/2026/01/01", a.root, a.prefix);
    std::fs::create_dir_all(&dir)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&a.out)?);
    let content = vec![7u8; 1024];
    for _ in 0..a.count {
        let name = format!("{}.bin", uuid::Uuid::now_v7());
        std::fs::write(format!("{dir}/{name}"), &content)?;
        writeln!(out, "{}priv/2026/01/01/{name}", a.prefix)?;
    }
    out.flush()?;
    println!("created={}", a.count);
    Ok(())
}
