//! Benchmark 4: `POST /v1/uploads/multipart` requests per second and
//! latency at a fixed number of concurrent clients.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::{client::http, Api, InitRateArgs, MIB};

pub(crate) async fn init_rate(a: InitRateArgs) -> Result<()> {
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
