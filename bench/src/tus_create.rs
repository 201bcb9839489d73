//! Benchmark `peers`, second half: tus creation (`POST` with `Upload-Length`,
//! no body) at a fixed number of concurrent clients, against any tus 1.0
//! server (claimcheck's `/v1/tus`, rustus, tus-node-server), so the same
//! client measures all of them. A request counts when it answers 201 with a
//! `Location`; anything else is an error.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::{client::http, TusCreateArgs};

const TUS: &str = "1.0.0";
/// `Upload-Metadata` of every creation: `filename bench.bin` (base64), which
/// every server takes and none needs.
const METADATA: &str = "filename YmVuY2guYmlu";

pub(crate) async fn tus_create(a: TusCreateArgs) -> Result<()> {
    let http = http()?;
    // `--auth` reads BENCH_TOKEN, which may list several tokens
    // (comma-separated, one per owner): client i uses token i mod n.
    let tokens: Vec<Option<String>> = match a.auth {
        true => std::env::var("BENCH_TOKEN")
            .context("--auth reads BENCH_TOKEN")?
            .split(',')
            .map(|t| Some(t.to_owned()))
            .collect(),
        false => vec![None],
    };
    let stop_warm = Instant::now() + Duration::from_secs(a.warmup_secs);
    let stop = stop_warm + Duration::from_secs(a.secs);
    let workers = (0..a.concurrency).map(|i| {
        let mut req = http
            .post(&a.endpoint)
            .header("tus-resumable", TUS)
            .header("upload-length", a.length)
            .header("upload-metadata", METADATA);
        if let Some(t) = &tokens[i % tokens.len()] {
            req = req.bearer_auth(t);
        }
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            loop {
                let t = Instant::now();
                if t >= stop {
                    break;
                }
                let res = req.try_clone().expect("no body").send().await;
                let ok = match res {
                    Ok(r) => {
                        let status = r.status();
                        let located = r.headers().contains_key("location");
                        // Read to the end so the connection is kept alive.
                        let text = r.text().await;
                        match (status.as_u16(), located, text) {
                            (201, true, Ok(_)) => true,
                            (_, _, text) => {
                                first_error.get_or_insert(format!(
                                    "HTTP {status}{}: {}",
                                    if located { "" } else { ", no Location" },
                                    text.unwrap_or_default()
                                        .chars()
                                        .take(200)
                                        .collect::<String>()
                                ));
                                false
                            }
                        }
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
    let mut first = None;
    for w in futures::future::join_all(workers).await {
        let (l, e, f) = w?;
        lat.extend(l);
        errors += e;
        first = first.or(f);
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
    if let Some(f) = first {
        println!("first_error={}", f.replace('\n', " "));
    }
    Ok(())
}
