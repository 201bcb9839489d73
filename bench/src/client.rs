//! What both sides of each comparison share: the request bodies, the HTTP
//! and S3 clients, and the upload paths (through the API, and straight to
//! the S3 server with presigned URLs).

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use aws_sdk_s3::{
    config::{
        BehaviorVersion, Credentials, Region, RequestChecksumCalculation,
        ResponseChecksumValidation,
    },
    presigning::PresigningConfig,
};
use bytes::{Bytes, BytesMut};
use futures::{stream, StreamExt, TryStreamExt};
use rand::RngCore;
use serde_json::{json, Value};

use crate::{Api, MIB, S3};

/// Bytes per body chunk handed to the HTTP client.
const CHUNK: u64 = MIB;
/// Random bytes the bodies are cut from.
const POOL: usize = 8 << 20;

pub(crate) fn pool() -> &'static [u8] {
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

pub(crate) fn http() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?)
}

pub(crate) async fn s3_client(s3: &S3) -> aws_sdk_s3::Client {
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

pub(crate) async fn api_single(http: &reqwest::Client, api: &Api, size: u64) -> Result<()> {
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

pub(crate) async fn direct_single(
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
pub(crate) async fn multipart(
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

pub(crate) fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

pub(crate) async fn timed<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<Duration> {
    let t = Instant::now();
    f.await?;
    Ok(t.elapsed())
}
