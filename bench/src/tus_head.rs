//! Benchmark 7, second half: `HEAD` of one tus upload at a fixed number of
//! concurrent clients, against any tus 1.0 server (claimcheck's `/v1/tus`,
//! tus-node-server). The upload is made first, by this client: created with
//! `--length` bytes declared, then `--sent` bytes in one `PATCH`, so the
//! server has full parts and bytes short of one to account for.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use rand::RngCore;

use crate::{client::http, TusHeadArgs};

const TUS: &str = "1.0.0";

pub(crate) async fn tus_head(a: TusHeadArgs) -> Result<()> {
    let http = http()?;
    let token = match a.auth {
        true => Some(std::env::var("BENCH_TOKEN").context("--auth reads BENCH_TOKEN")?),
        false => None,
    };
    let authed = |r: reqwest::RequestBuilder| match &token {
        Some(t) => r.bearer_auth(t).header("tus-resumable", TUS),
        None => r.header("tus-resumable", TUS),
    };
    ensure!(a.sent <= a.length, "--sent is more than --length");

    let res = authed(http.post(&a.endpoint))
        .header("upload-length", a.length)
        // filename head.bin
        .header("upload-metadata", "filename aGVhZC5iaW4=")
        .send()
        .await?;
    let status = res.status();
    let location = res
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    ensure!(
        status.as_u16() == 201,
        "creation: HTTP {status}: {}",
        res.text().await.unwrap_or_default()
    );
    let url =
        reqwest::Url::parse(&a.endpoint)?.join(&location.context("creation: no Location")?)?;

    let mut bytes = vec![0u8; a.sent as usize];
    rand::rng().fill_bytes(&mut bytes);
    let res = authed(http.patch(url.clone()))
        .header("upload-offset", 0)
        .header("content-type", "application/offset+octet-stream")
        .body(bytes)
        .send()
        .await?;
    let status = res.status();
    let offset = res
        .headers()
        .get("upload-offset")
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    ensure!(
        status.as_u16() == 204 && offset.as_deref() == Some(&a.sent.to_string()),
        "PATCH: HTTP {status}, Upload-Offset {offset:?}: {}",
        res.text().await.unwrap_or_default()
    );

    let want = a.sent.to_string();
    let stop_warm = Instant::now() + Duration::from_secs(a.warmup_secs);
    let stop = stop_warm + Duration::from_secs(a.secs);
    let workers = (0..a.concurrency).map(|_| {
        let req = authed(http.head(url.clone()));
        let want = want.clone();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut first_error = None;
            loop {
                let t = Instant::now();
                if t >= stop {
                    break;
                }
                let res = req.try_clone().expect("a HEAD has no body").send().await;
                let ok = match res {
                    Ok(r) => {
                        let got = r
                            .headers()
                            .get("upload-offset")
                            .and_then(|o| o.to_str().ok());
                        if r.status().as_u16() == 200 && got == Some(want.as_str()) {
                            true
                        } else {
                            first_error.get_or_insert(format!(
                                "HTTP {}, Upload-Offset {got:?}",
                                r.status()
                            ));
                            false
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
    println!("url={url}");
    println!("concurrency={}", a.concurrency);
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
