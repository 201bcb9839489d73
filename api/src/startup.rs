//! Building the application: pool, store, routes, and a listener bound first,
//! so that `CLAIMCHECK_LISTEN=127.0.0.1:0` works and tests learn the port.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_cors::Cors;
use actix_web::{
    dev::Server, error::InternalError, http::header, middleware::from_fn, web, App, HttpResponse,
    HttpServer,
};
use claimcheck::db::Pool;
use claimcheck::{
    config::Config,
    db::{self, AuditLog, Owners},
    metrics::Metrics,
    store::{self, instrumented::Instrumented, ObjectStore, UrlSigning},
    tokens::TokenStore,
    uploads::{Limits, Uploads},
};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::refusals::Refusals, error::ApiError, observe, page::WebPage, routes,
    routes::adoption::downloads::Downloads,
};

/// What handlers share.
pub struct AppState {
    /// The PostgreSQL pool.
    pub pool: Pool,
    /// API tokens.
    pub tokens: TokenStore,
    /// The upload service.
    pub uploads: Uploads,
    /// Cut a body after this long without a byte.
    pub body_idle_timeout: Duration,
    /// Where public objects are served from.
    pub public_base_url: Option<String>,
    /// The object store (for readiness).
    pub store: Arc<dyn ObjectStore>,
    /// The key prefix (readiness probes under it).
    pub key_prefix: String,
    /// The process's metrics.
    pub metrics: Metrics,
    /// Download URLs: presigned by S3, or signed and served by the API.
    pub downloads: Downloads,
    /// `CLAIMCHECK_API_PUBLIC_URL`: where tus `Location`s point.
    pub api_public_url: Option<url::Url>,
    /// Refused authentications on their way to the audit log.
    pub refusals: Arc<Refusals>,
    /// The audit log.
    pub audit_log: AuditLog,
    /// Owners' quotas and usage.
    pub owners: Owners,
}

/// A built, bound, not yet running API server.
pub struct Application {
    port: u16,
    server: Server,
    refusals: Arc<Refusals>,
}

impl Application {
    /// Connects the pool, builds the store, binds the listener and builds the server.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let url = config
            .database_url
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is not set"))?;
        let pool = db::connect_with(url, config.db_pool_size, config.db_statements)?;
        db::settings::record_key_prefix_at_start(&pool, &config.key_prefix).await?;
        let store = store::open(&config.store, Some(&UrlSigning::from_config(&config))).await?;
        let downloads = Downloads::from_config(&config);
        let listener = TcpListener::bind(config.listen)?;
        let port = listener.local_addr()?.port();
        let metrics = Metrics::new();
        let store = Instrumented::wrap(store, metrics.clone());
        let refusals = Arc::new(Refusals::new(AuditLog::new(pool.clone())));
        let uploads = Uploads::new(pool.clone(), store.clone(), Limits::from_config(&config))
            .counting_refusals(metrics.quota_refusals_total.clone());
        let state = web::Data::new(AppState {
            metrics,
            tokens: TokenStore::new(pool.clone()),
            uploads,
            refusals: refusals.clone(),
            audit_log: AuditLog::new(pool.clone()),
            owners: Owners::new(pool.clone()),
            store,
            key_prefix: config.key_prefix.clone(),
            pool,
            body_idle_timeout: config.body_idle_timeout,
            public_base_url: config.public_base_url.clone(),
            downloads,
            api_public_url: config.api_public_url.clone(),
        });
        let cors_origins = config.cors_origins.clone();
        let web_page = config.web_dir.as_deref().map(|dir| {
            let page = WebPage::load(dir);
            match &page {
                WebPage::Built { .. } => {
                    tracing::info!(dir = %dir.display(), "serving the upload page at /")
                }
                WebPage::Missing { why, .. } => tracing::warn!(
                    dir = %dir.display(),
                    why,
                    "the upload page is not built: / says how to build it"
                ),
            }
            web::Data::new(page)
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(cors(&cors_origins))
                .wrap(from_fn(observe::observe))
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(64 * 1024)
                        .error_handler(|e, _| {
                            InternalError::from_response(
                                e.to_string(),
                                problem(ApiError::InvalidRequest(e.to_string())),
                            )
                            .into()
                        }),
                )
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    InternalError::from_response(
                        e.to_string(),
                        problem(ApiError::InvalidRequest(e.to_string())),
                    )
                    .into()
                }))
                .configure(routes::configure)
                .configure(|cfg| {
                    if let Some(page) = &web_page {
                        crate::page::configure(cfg, page.clone());
                    }
                })
                .default_service(web::to(|| async {
                    problem(ApiError::not_found("no such route"))
                }))
        })
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        .listen(listener)?
        .run();
        tracing::info!(addr = %config.listen, port, "claimcheck-api listening");
        Ok(Self {
            port,
            server,
            refusals,
        })
    }

    /// The port the listener is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT, letting requests in flight finish;
    /// then writes the refused authentications still counted to the audit
    /// log.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let cancel = CancellationToken::new();
        let flusher = {
            let (refusals, cancel) = (self.refusals.clone(), cancel.clone());
            tokio::spawn(async move { refusals.run(cancel).await })
        };
        let served = self.server.await;
        cancel.cancel();
        let _ = flusher.await;
        self.refusals.flush(true).await;
        served?;
        Ok(())
    }
}

/// CORS for the configured origins only (none: browsers on other origins
/// get no CORS headers and are refused by the browser). `ETag`, `Location`
/// and tus's headers are exposed so browser clients (Uppy) can resume and
/// follow uploads.
fn cors(origins: &[String]) -> Cors {
    origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers(
            [
                "authorization",
                "content-type",
                "x-content-sha256",
                "idempotency-key",
                "x-request-id",
                // tus
                "tus-resumable",
                "upload-length",
                "upload-defer-length",
                "upload-offset",
                "upload-metadata",
                "upload-checksum",
                "upload-concat",
                "x-http-method-override",
            ]
            .map(header::HeaderName::from_static),
        )
        .expose_headers(
            [
                "etag",
                "location",
                "upload-offset",
                "upload-length",
                "upload-expires",
                "upload-metadata",
                "upload-concat",
                "upload-defer-length",
                "tus-resumable",
                "tus-version",
                "tus-extension",
                "tus-max-size",
                "tus-checksum-algorithm",
            ]
            .map(header::HeaderName::from_static),
        )
        .max_age(3600)
}

fn problem(e: ApiError) -> HttpResponse {
    actix_web::ResponseError::error_response(&e)
}
