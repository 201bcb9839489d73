//! What benchmarks 3 and 5 start from: real objects or multipart sessions in
//! the S3 server, or files in the filesystem store.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use futures::{stream, StreamExt, TryStreamExt};

use crate::{client::s3_client, FsFilesArgs, S3FillArgs};

pub(crate) async fn s3_fill(a: S3FillArgs, sessions: bool) -> Result<()> {
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

pub(crate) fn fs_files(a: FsFilesArgs) -> Result<()> {
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
