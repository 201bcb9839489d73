//! A private PostgreSQL cluster serving TLS with a certificate made here.
//!
//! The cluster comes from `scripts/lib/postgres.sh start-private` (as the
//! `postgres` user when the tests run as root); TLS is switched on with
//! `ALTER SYSTEM SET ssl = on` and a reload, which PostgreSQL 10+ accepts
//! without a restart. The server certificate names only `localhost`, so a
//! connection to 127.0.0.1 has a chain that verifies and a hostname that
//! does not.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The PostgreSQL cluster, removed on drop (also when the test panics).
pub struct TlsCluster {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// `ca.crt` (signed the server's certificate), `other-ca.crt` (did not).
    pub certs: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl TlsCluster {
    /// Starts a cluster and turns TLS on (a few seconds).
    pub async fn start() -> Self {
        let out = script(&["start-private"], &[]);
        let env: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let value = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{name} missing from {out}"))
        };
        let data = PathBuf::from(value("CLAIMCHECK_PG_DIR")).join("data");
        let port = value("CLAIMCHECK_PG_PORT").parse().expect("a port");
        // From here on, a panic still removes the cluster.
        let cluster = Self {
            port,
            certs: tempfile::tempdir().expect("a temporary directory"),
            env,
        };
        cluster.write_certificates(&data);
        cluster.set_ssl(true).await;
        cluster
    }

    /// `postgres://postgres@HOST:PORT/postgres?PARAMS` (`params` may be "").
    pub fn url(&self, host: &str, params: &str) -> String {
        let query = if params.is_empty() { "" } else { "?" };
        format!(
            "postgres://postgres@{host}:{}/postgres{query}{params}",
            self.port
        )
    }

    /// A certificate file of [`Self::certs`].
    pub fn cert(&self, name: &str) -> PathBuf {
        self.certs.path().join(name)
    }

    /// Turns TLS on or off (reload, no restart) and waits until a new
    /// connection sees the change.
    pub async fn set_ssl(&self, on: bool) {
        let admin = claimcheck_tests::db::connect(&self.url("127.0.0.1", "sslmode=disable")).await;
        let value = if on { "on" } else { "off" };
        // Two statements: ALTER SYSTEM refuses to run in the implicit
        // transaction of a multi-statement query.
        for sql in [
            &format!("ALTER SYSTEM SET ssl = {value}"),
            "SELECT pg_reload_conf()",
        ] {
            admin.batch_execute(sql).await.expect("reconfigure ssl");
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // The postmaster applies the reload asynchronously; backends
            // forked after it see the new value.
            let probe =
                claimcheck_tests::db::connect(&self.url("127.0.0.1", "sslmode=disable")).await;
            let now: String = probe.query_one("SHOW ssl", &[]).await.unwrap().get(0);
            if now == value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ssl is still {now} after a reload; see the server log under {:?}",
                self.env
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A CA and a server certificate it signs for `localhost` (data
    /// directory, owned like it, key mode 0600 as PostgreSQL demands), and
    /// an unrelated CA (next to `ca.crt`, for the "wrong root" cases).
    fn write_certificates(&self, data: &Path) {
        let ca = make_ca("claimcheck test CA");
        let other = make_ca("an unrelated CA");
        std::fs::write(self.cert("ca.crt"), &ca.1).unwrap();
        std::fs::write(self.cert("other-ca.crt"), &other.1).unwrap();

        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.0).unwrap();

        let owner = std::fs::metadata(data).expect("the data directory");
        for (name, pem) in [
            ("server.crt", cert.pem()),
            ("server.key", key.serialize_pem()),
        ] {
            let path = data.join(name);
            std::fs::write(&path, pem).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid()))
                .expect("give the certificate to the cluster's owner");
        }
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        // Ignore how it went: a second panic would hide the test's own.
        let _ = script_command(&["destroy"], &self.env)
            .stdout(Stdio::null())
            .status();
    }
}

/// A self-signed CA: its issuer (to sign with) and its certificate in PEM.
fn make_ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (Issuer::new(params, key), pem)
}

fn script_command(args: &[&str], env: &[(String, String)]) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut command = Command::new("bash");
    command
        .arg(root.join("scripts/lib/postgres.sh"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null());
    command
}

fn script(args: &[&str], env: &[(String, String)]) -> String {
    let out = script_command(args, env)
        .output()
        .expect("run scripts/lib/postgres.sh");
    assert!(
        out.status.success(),
        "scripts/lib/postgres.sh {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
