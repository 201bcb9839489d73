//! Building the application: pool, store, routes, and a listener bound first,
//! so that `CLAIMCHECK_LISTEN=127.0.0.1:0` works and tests learn the port.

use std::net::TcpListener;

use actix_web::{dev::Server, web, App, HttpServer};
use claimcheck::{config::Config, db};
use deadpool_postgres::Pool;

use crate::routes;

/// What handlers share.
pub struct AppState {
    /// The PostgreSQL pool.
    pub pool: Pool,
}

/// A built, bound, not yet running API server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Connects the pool, binds the listener and builds the server.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let url = config
            .database_url
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is not set"))?;
        let pool = db::connect(url, config.db_pool_size)?;
        let listener = TcpListener::bind(config.listen)?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState { pool });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(routes::health::configure)
        })
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        .listen(listener)?
        .run();
        tracing::info!(addr = %config.listen, port, "claimcheck-api listening");
        Ok(Self { port, server })
    }

    /// The port the listener is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT, letting requests in flight finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await?;
        Ok(())
    }
}
