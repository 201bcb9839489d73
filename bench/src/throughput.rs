//! Benchmarks 1 and 2: upload throughput through the API against straight
//! to the S3 server, and the API's memory under concurrent uploads.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::{
    client::{api_single, direct_single, http, mib_s, multipart, pool, s3_client, timed},
    MemoryArgs, ThroughputArgs, MIB,
};

/// Runs `api` and `direct` one after the other, `api` first when asked;
/// their times as `(api, direct)`.
async fn pair(
    api_first: bool,
    api: impl std::future::Future<Output = Result<Duration>>,
    direct: impl std::future::Future<Output = Result<Duration>>,
) -> Result<(Duration, Duration)> {
    if api_first {
        let api = api.await?;
        Ok((api, direct.await?))
    } else {
        let direct = direct.await?;
        Ok((api.await?, direct))
    }
}

pub(crate) async fn throughput(a: ThroughputArgs) -> Result<()> {
    let http = http()?;
    let s3c = s3_client(&a.s3).await;
    pool();
    // Warm up connections and the API's pools with a small upload each way,
    // and Garage's data directories (created at its first blocks) with a
    // larger one straight to it, so the first measured upload, whichever
    // column it is in, does not pay for a fresh server.
    api_single(&http, &a.api, MIB).await?;
    direct_single(&http, &s3c, &a.s3.s3_bucket, a.size.min(256 * MIB)).await?;
    let mut single = Vec::new();
    let mut multi = Vec::new();
    for round in 0..a.reps {
        // The column that goes first alternates: round 1 through the API
        // first (the API's first large upload since it started), round 2
        // straight to Garage first, and so on.
        let api_first = round % 2 == 0;
        single.push(
            pair(
                api_first,
                timed(api_single(&http, &a.api, a.size)),
                timed(direct_single(&http, &s3c, &a.s3.s3_bucket, a.size)),
            )
            .await?,
        );
        let parts = |direct| multipart(&http, &a.api, a.size, a.part_size, a.in_flight, direct);
        multi.push(pair(api_first, timed(parts(false)), timed(parts(true))).await?);
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

pub(crate) async fn memory(a: MemoryArgs) -> Result<()> {
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
