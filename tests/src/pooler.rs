//! A PgBouncer of the test's own, in transaction pooling mode
//! (`scripts/lib/pgbouncer.sh start-private`), stopped on drop.

use crate::faults::servers::{clean_up, key_values, script, value};

/// A private PgBouncer in front of a PostgreSQL on loopback.
pub struct PgBouncer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    env: Vec<(String, String)>,
}

impl PgBouncer {
    /// Starts one in front of the PostgreSQL on `pg_port`, with at most
    /// `servers` server connections.
    pub fn start(pg_port: u16, servers: u32) -> Self {
        let args = [pg_port.to_string(), servers.to_string()];
        let env = key_values(&script(
            "pgbouncer.sh",
            &["start-private", &args[0], &args[1]],
            &[],
        ));
        let port = value(&env, "CLAIMCHECK_PGBOUNCER_PORT")
            .parse()
            .expect("a port");
        Self { port, env }
    }

    /// `url` with its port replaced by this PgBouncer's.
    pub fn url_for(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a URL");
        url.set_port(Some(self.port)).expect("a port");
        url.to_string()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        clean_up("pgbouncer.sh", "stop", &self.env);
    }
}
