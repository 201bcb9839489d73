//! A webhook receiver on a local port: records every request and answers
//! as the test scripts it (a status, a hang, a redirect, a huge body).

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::{body::Frame, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;

/// How to answer a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, empty body.
    Status(u16),
    /// Never answer.
    Hang,
    /// 302 to this URL.
    Redirect(String),
    /// 500 with a body of this many bytes, sent slowly.
    Huge(usize),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Received {
    /// The `webhook-id` header.
    pub fn id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Script = Arc<dyn Fn(usize, &Received) -> Reply + Send + Sync>;

/// A receiver; stops when dropped.
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers the n-th request (0-based) with `script(n, request)`.
    pub async fn start(script: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Script = Arc::new(script);
        let task = tokio::spawn({
            let got = got.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (got, script) = (got.clone(), script.clone());
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |req| answer(req, got.clone(), script.clone()));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self { url, got, task }
    }

    /// Answers every request with `status`.
    pub async fn always(status: u16) -> Self {
        Self::start(move |_, _| Reply::Status(status)).await
    }

    /// The requests so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests came (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} requests after {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(
    req: Request<hyper::body::Incoming>,
    got: Arc<Mutex<Vec<Received>>>,
    script: Script,
) -> Result<Response<Body>, Infallible> {
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let received = Received { headers, body };
    let n = {
        let mut got = got.lock().unwrap();
        got.push(received.clone());
        got.len() - 1
    };
    let empty = || Full::new(Bytes::new()).boxed();
    let res = match script(n, &received) {
        Reply::Status(s) => Response::builder().status(s).body(empty()),
        Reply::Hang => {
            futures::future::pending::<()>().await;
            unreachable!()
        }
        Reply::Redirect(to) => Response::builder()
            .status(302)
            .header("location", to)
            .body(empty()),
        Reply::Huge(len) => {
            // 64 KiB at a time, forever slower than the client reads.
            let chunks = futures::stream::iter(
                (0..len / 65_536)
                    .map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 65_536])))),
            );
            Response::builder()
                .status(500)
                .body(StreamBody::new(chunks).boxed())
        }
    };
    Ok(res.unwrap())
}
