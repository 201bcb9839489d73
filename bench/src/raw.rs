//! The limits benchmarks 3b and 5 are measured against: what the same
//! client does straight on the same S3 server, with no database and no
//! claimcheck in between.
//!
//! - `s3-delete`: the keys of a file deleted with `DeleteObjects`, 1,000
//!   keys a request, `--concurrency` requests in flight (the delete queue's
//!   S3 drain does this work, plus its leases and outcomes).
//! - `s3-abort`: the sessions of a file (`key<TAB>upload_id`) each asked
//!   about (`HeadObject`, as the sweeper asks whether the object exists)
//!   and aborted (`AbortMultipartUpload`), `--concurrency` in flight (the
//!   sweeper's expiry plus the delete worker's abort do this work).
//! - `s3-create`: multipart sessions created (`CreateMultipartUpload`) by
//!   `--concurrency` clients for `--secs`, measured as benchmark 4 measures
//!   `POST /v1/uploads/multipart` (which does this, plus its claim).

use std::time::Instant;

use anyhow::{Context, Result};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures::{stream, StreamExt, TryStreamExt};

use crate::{client::s3_client, rate::measure, RawArgs, S3CreateArgs};

fn lines(path: &str) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("read {path}"))?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

fn report(n: usize, t: Instant) {
    let secs = t.elapsed().as_secs_f64();
    println!("done={n}");
    println!("secs={secs:.2}");
    println!("per_s={:.0}", n as f64 / secs);
}

pub(crate) async fn s3_delete(a: RawArgs) -> Result<()> {
    let s3c = s3_client(&a.s3).await;
    let keys = lines(&a.input)?;
    let t = Instant::now();
    stream::iter(keys.chunks(1000).map(<[String]>::to_vec))
        .map(|chunk| {
            let (s3c, bucket) = (s3c.clone(), a.s3.s3_bucket.clone());
            async move {
                let objects = chunk
                    .iter()
                    .map(|k| ObjectIdentifier::builder().key(k).build())
                    .collect::<Result<Vec<_>, _>>()?;
                let delete = Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()?;
                let out = s3c
                    .delete_objects()
                    .bucket(bucket)
                    .delete(delete)
                    .send()
                    .await?;
                anyhow::ensure!(
                    out.errors().is_empty(),
                    "DeleteObjects errors: {:?}",
                    out.errors()
                );
                anyhow::Ok(())
            }
        })
        .buffer_unordered(a.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    report(keys.len(), t);
    Ok(())
}

pub(crate) async fn s3_abort(a: RawArgs) -> Result<()> {
    let s3c = s3_client(&a.s3).await;
    let sessions = lines(&a.input)?;
    let t = Instant::now();
    stream::iter(sessions.iter())
        .map(|line| {
            let (s3c, bucket) = (s3c.clone(), a.s3.s3_bucket.clone());
            async move {
                let (key, upload_id) = line.split_once('\t').context("key<TAB>upload_id")?;
                // The object does not exist yet: a 404 is the expected answer.
                let head = s3c.head_object().bucket(&bucket).key(key).send().await;
                anyhow::ensure!(head.is_err(), "{key} exists");
                s3c.abort_multipart_upload()
                    .bucket(&bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .send()
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(a.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    report(sessions.len(), t);
    Ok(())
}

pub(crate) async fn s3_create(a: S3CreateArgs) -> Result<()> {
    let s3c = s3_client(&a.s3).await;
    let (bucket, prefix) = (a.s3.s3_bucket.clone(), a.prefix.clone());
    let rate = measure(a.load.window(), move |_| {
        let request = s3c
            .create_multipart_upload()
            .bucket(&bucket)
            .key(format!("{prefix}{}", uuid::Uuid::now_v7()))
            .content_type("application/octet-stream");
        async move {
            match request.send().await {
                Ok(out) if out.upload_id().is_some() => Ok(()),
                Ok(_) => Err("no upload id".to_owned()),
                Err(e) => Err(format!("{}", aws_sdk_s3::error::DisplayErrorContext(e))),
            }
        }
    })
    .await?;
    println!("concurrency={}", a.load.concurrency);
    rate.print();
    Ok(())
}
