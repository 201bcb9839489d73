//! Benchmark 4: `POST /v1/uploads/multipart` requests per second and
//! latency at a fixed number of concurrent clients.

use anyhow::Result;
use serde_json::json;

use crate::{client::http, rate::measure, InitRateArgs, MIB};

pub(crate) async fn init_rate(a: InitRateArgs) -> Result<()> {
    let http = http()?;
    // `--token` may list several tokens (comma-separated, one per owner):
    // client i uses token i mod n.
    let tokens: Vec<String> = a.api.token.split(',').map(str::to_owned).collect();
    let owners = tokens.len();
    let url = format!("{}/v1/uploads/multipart", a.api.api);
    let rate = measure(a.load.window(), move |client| {
        let request = http
            .post(&url)
            .bearer_auth(&tokens[client % tokens.len()])
            .json(&json!({"filename": "bench.bin",
                          "content_type": "application/octet-stream",
                          "size": 64 * MIB}));
        async move {
            let r = request.send().await.map_err(|e| e.to_string())?;
            let status = r.status();
            let body = r.text().await.map_err(|e| e.to_string())?;
            match status.as_u16() {
                201 => Ok(()),
                _ => Err(format!("HTTP {status}: {body}")),
            }
        }
    })
    .await?;
    println!("concurrency={}", a.load.concurrency);
    println!("owners={owners}");
    rate.print();
    Ok(())
}
