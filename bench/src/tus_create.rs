//! Benchmark `peers`, second half: tus creation (`POST` with `Upload-Length`,
//! no body) at a fixed number of concurrent clients, against any tus 1.0
//! server (claimcheck's `/v1/tus`, rustus, tus-node-server), so the same
//! client measures all of them. A request counts when it answers 201 with a
//! `Location`; anything else is an error.

use anyhow::{Context, Result};

use crate::{client::http, rate::measure, TusCreateArgs};

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
    let owners = tokens.len();
    let rate = measure(a.load.window(), move |client| {
        let mut request = http
            .post(&a.endpoint)
            .header("tus-resumable", TUS)
            .header("upload-length", a.length)
            .header("upload-metadata", METADATA);
        if let Some(t) = &tokens[client % tokens.len()] {
            request = request.bearer_auth(t);
        }
        async move {
            let r = request.send().await.map_err(|e| e.to_string())?;
            let status = r.status();
            let located = r.headers().contains_key("location");
            // Read to the end so the connection is kept alive.
            let text = r.text().await.map_err(|e| e.to_string())?;
            match (status.as_u16(), located) {
                (201, true) => Ok(()),
                _ => Err(format!(
                    "HTTP {status}{}: {}",
                    if located { "" } else { ", no Location" },
                    text.chars().take(200).collect::<String>()
                )),
            }
        }
    })
    .await?;
    println!("concurrency={}", a.load.concurrency);
    println!("owners={owners}");
    rate.print();
    Ok(())
}
