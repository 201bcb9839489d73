//! Request bodies on their way to the store.
//!
//! actix's `Payload` lives on the worker thread that accepted the request
//! (it is not `Send`), while the store wants a `Send` stream. A pump reads
//! the payload and hands chunks over a bounded channel: at most
//! [`CHANNEL_CHUNKS`] chunks of at most ~256 KiB (actix's frame size) wait
//! in it, so an upload holds about 1 MiB here, whatever its size.

use std::{future::Future, io, time::Duration};

use actix_web::web;
use bytes::Bytes;
use claimcheck::{metrics::Metrics, store::ByteStream};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::observe::InFlight;

/// Chunks buffered between the payload and the store, per upload.
pub const CHANNEL_CHUNKS: usize = 4;

/// Splits a payload into a `Send` stream for the store and the pump that
/// feeds it. The pump stops at the first byte past `declared` (the store
/// then fails with a length mismatch: a lying client is not read further),
/// at a payload error (the client hung up), or when no byte arrives for
/// `idle` (a stalled client), never for the total duration.
pub fn pump(
    mut payload: web::Payload,
    declared: u64,
    idle: Duration,
    metrics: &Metrics,
) -> (ByteStream, impl Future<Output = ()>) {
    let in_flight = InFlight::start(metrics);
    let bytes_total = metrics.upload_bytes_total.clone();
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(CHANNEL_CHUNKS);
    let feed = async move {
        let _in_flight = in_flight;
        let mut seen = 0u64;
        loop {
            let item = match tokio::time::timeout(idle, payload.next()).await {
                Ok(Some(Ok(chunk))) => {
                    seen += chunk.len() as u64;
                    bytes_total.inc_by(chunk.len() as u64);
                    Ok(chunk)
                }
                Ok(Some(Err(e))) => Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    e.to_string(),
                )),
                Ok(None) => return,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no byte arrived for {}s", idle.as_secs()),
                )),
            };
            let stop = item.is_err() || seen > declared;
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    };
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (stream.boxed(), feed)
}

/// Runs `work` while `feed` pumps its body; answers as soon as `work` is
/// done, even when the client is still sending.
pub async fn with_pump<T>(feed: impl Future<Output = ()>, work: impl Future<Output = T>) -> T {
    tokio::pin!(feed);
    tokio::pin!(work);
    let mut fed = false;
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = &mut feed, if !fed => fed = true,
        }
    }
}

/// `Content-Length`, if present and a number.
pub fn content_length(req: &actix_web::HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A header's value as text.
pub fn header<'a>(req: &'a actix_web::HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}
