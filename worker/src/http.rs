//! The worker's operations endpoint: `/metrics`, `/healthz`, `/readyz`.

use std::{net::SocketAddr, time::Duration};

use actix_web::{dev::ServerHandle, web, App, HttpResponse, HttpServer};
use claimcheck::{db, jobs::JobContext, metrics, store::probe};

/// A running endpoint.
pub struct Server {
    /// Stops it.
    pub handle: ServerHandle,
    /// Where it listens (the port is the system's pick for `:0`).
    pub local_addr: SocketAddr,
}

/// Binds `addr` and serves on the current runtime.
pub fn start(addr: SocketAddr, ctx: JobContext) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(ctx.clone()))
            .route("/metrics", web::get().to(render_metrics))
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
            )
            .route("/readyz", web::get().to(ready))
    })
    .workers(1)
    // The worker handles signals itself, so jobs and server stop in order.
    .disable_signals()
    .bind(addr)?;
    let local_addr = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(Server { handle, local_addr })
}

async fn render_metrics(ctx: web::Data<JobContext>) -> HttpResponse {
    // The pool gauges are read from the pool itself: free, so fresh per scrape.
    ctx.metrics.set_pool_status(&ctx.pool);
    HttpResponse::Ok()
        .content_type(metrics::CONTENT_TYPE)
        .body(ctx.metrics.render())
}

/// Ready when PostgreSQL answers and every job loop completed a step within
/// [`JobSettings::stall_after`](claimcheck::jobs::JobSettings::stall_after)
/// (a loop wedged on a call that never returns is not ready). The store's
/// state is reported, not required: an S3 outage must not take every
/// worker out at once (their deletes are deferred and retried anyway).
async fn ready(ctx: web::Data<JobContext>) -> HttpResponse {
    let timeout = Duration::from_secs(2);
    let database = matches!(
        tokio::time::timeout(timeout, db::ping(&ctx.pool)).await,
        Ok(Ok(()))
    );
    let store = if probe::store_answers(&*ctx.store, &ctx.settings.key_prefix).await {
        "ok"
    } else {
        "unavailable"
    };
    let stalled: Vec<&str> = ctx
        .liveness
        .stalled(ctx.settings.stall_after)
        .into_iter()
        .map(|l| l.name())
        .collect();
    let body = serde_json::json!({
        "database": if database { "ok" } else { "unavailable" },
        "store": store,
        "stalled_loops": stalled,
    });
    if database && stalled.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
