//! Benchmark 7, second half: `HEAD` of one tus upload at a fixed number of
//! concurrent clients, against any tus 1.0 server (claimcheck's `/v1/tus`,
//! tus-node-server). The upload is made first, by this client: created with
//! `--length` bytes declared, then `--sent` bytes in one `PATCH`, so the
//! server has full parts and bytes short of one to account for.

use anyhow::{ensure, Context, Result};
use rand::RngCore;

use crate::{client::http, rate::measure, TusHeadArgs};

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
    let head = authed(http.head(url.clone()));
    let rate = measure(a.load.window(), move |_| {
        let request = head.try_clone().expect("a HEAD has no body");
        let want = want.clone();
        async move {
            let r = request.send().await.map_err(|e| e.to_string())?;
            let got = r
                .headers()
                .get("upload-offset")
                .and_then(|o| o.to_str().ok());
            match (r.status().as_u16(), got) {
                (200, Some(got)) if got == want => Ok(()),
                (status, got) => Err(format!("HTTP {status}, Upload-Offset {got:?}")),
            }
        }
    })
    .await?;
    println!("url={url}");
    println!("concurrency={}", a.load.concurrency);
    rate.print();
    Ok(())
}
