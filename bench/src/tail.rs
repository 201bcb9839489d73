//! Benchmark 6: where an append keeps its bytes short of a part (the tail).
//!
//! The service keeps them in PostgreSQL (`claimcheck.upload_tails`, one row
//! per append). The alternative is an object in the store per append. Both
//! are measured doing the same work: N appends of one size (each written on
//! its own, as a PATCH commits), then the cut: the segments read back in
//! order and dropped, as when a part fills.

use std::time::{Duration, Instant};

use anyhow::Result;
use aws_sdk_s3::{
    primitives::ByteStream as SdkByteStream,
    types::{Delete, ObjectIdentifier},
};
use bytes::Bytes;

use crate::{client::s3_client, TailArgs};

/// What one design took for N appends and the cut.
struct Timing {
    append: Vec<Duration>,
    cut: Duration,
}

pub(crate) async fn tail(a: TailArgs) -> Result<()> {
    let (pg, conn) = tokio_postgres::connect(&a.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let s3c = s3_client(&a.s3).await;
    println!(
        "| segment | appends | design | append p50 | append mean | cut (read all, drop) | total |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (size, count) in [(1024usize, 256usize), (64 * 1024, 64), (1 << 20, 12)] {
        let segment = Bytes::from(vec![0x5au8; size]);
        let claim = new_claim(&pg).await?;
        let pg_t = in_postgres(&pg, claim, &segment, count).await?;
        let s3_t = in_store(&s3c, &a.s3.s3_bucket, &a.prefix, &segment, count).await?;
        for (design, t) in [("PostgreSQL row", pg_t), ("store object", s3_t)] {
            let total = t.append.iter().sum::<Duration>() + t.cut;
            println!(
                "| {} | {count} | {design} | {:.2} ms | {:.2} ms | {:.1} ms | {:.0} ms |",
                human(size),
                ms(median(&t.append)),
                ms(t.append.iter().sum::<Duration>()) / count as f64,
                ms(t.cut),
                ms(total),
            );
        }
    }
    Ok(())
}

async fn new_claim(pg: &tokio_postgres::Client) -> Result<uuid::Uuid> {
    let id = uuid::Uuid::now_v7();
    pg.execute(
        "INSERT INTO claimcheck.upload_claims
                (id, object_key, owner, filename, content_type, size, expires_at)
         VALUES ($1, $2, 'bench', 'a.bin', 'application/octet-stream',
                 1, now() + interval '1 hour')",
        &[&id, &format!("bench/tail/{id}")],
    )
    .await?;
    Ok(id)
}

async fn in_postgres(
    pg: &tokio_postgres::Client,
    claim: uuid::Uuid,
    segment: &Bytes,
    count: usize,
) -> Result<Timing> {
    let insert = pg
        .prepare(
            "INSERT INTO claimcheck.upload_tails (claim_id, start_offset, bytes)
             VALUES ($1, $2, $3)",
        )
        .await?;
    let mut append = Vec::with_capacity(count);
    for i in 0..count {
        let t = Instant::now();
        let start = (i * segment.len()) as i64;
        pg.execute(&insert, &[&claim, &start, &segment.as_ref()])
            .await?;
        append.push(t.elapsed());
    }
    let t = Instant::now();
    let rows = pg
        .query(
            "SELECT bytes FROM claimcheck.upload_tails WHERE claim_id = $1 ORDER BY start_offset",
            &[&claim],
        )
        .await?;
    let read: usize = rows.iter().map(|r| r.get::<_, &[u8]>(0).len()).sum();
    anyhow::ensure!(read == count * segment.len(), "read back {read} bytes");
    pg.execute(
        "DELETE FROM claimcheck.upload_tails WHERE claim_id = $1",
        &[&claim],
    )
    .await?;
    Ok(Timing {
        append,
        cut: t.elapsed(),
    })
}

async fn in_store(
    s3c: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    segment: &Bytes,
    count: usize,
) -> Result<Timing> {
    let base = format!("{prefix}tail/{}", uuid::Uuid::now_v7());
    let keys: Vec<String> = (0..count).map(|i| format!("{base}/{i:08}")).collect();
    let mut append = Vec::with_capacity(count);
    for key in &keys {
        let t = Instant::now();
        s3c.put_object()
            .bucket(bucket)
            .key(key)
            .body(SdkByteStream::from(segment.clone()))
            .send()
            .await?;
        append.push(t.elapsed());
    }
    let t = Instant::now();
    let mut read = 0;
    for key in &keys {
        let out = s3c.get_object().bucket(bucket).key(key).send().await?;
        read += out.body.collect().await?.into_bytes().len();
    }
    anyhow::ensure!(read == count * segment.len(), "read back {read} bytes");
    let objects = keys
        .iter()
        .map(|k| ObjectIdentifier::builder().key(k).build())
        .collect::<Result<Vec<_>, _>>()?;
    let delete = Delete::builder().set_objects(Some(objects)).build()?;
    s3c.delete_objects()
        .bucket(bucket)
        .delete(delete)
        .send()
        .await?;
    Ok(Timing {
        append,
        cut: t.elapsed(),
    })
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn human(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}
