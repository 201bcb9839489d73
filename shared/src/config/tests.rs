//! Configuration tests.

use super::*;
use std::collections::HashMap;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults_are_the_contracts() {
    let c = config(&[]).unwrap();
    assert_eq!(c.claim_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(c.unconsumed_ttl, Some(Duration::from_secs(7 * 24 * 3600)));
    assert_eq!(c.max_upload_size, 5 * 1024 * 1024 * 1024);
    assert_eq!(c.part_size, 16 * 1024 * 1024);
    assert_eq!(c.delete_max_attempts, 12);
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    for denied in ["image/svg+xml", "text/html", "text/xml", "application/xml"] {
        assert!(
            c.denied_content_types.contains(&denied.to_string()),
            "{denied}"
        );
    }
    assert!(matches!(c.store, StoreConfig::Fs { .. }));
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn key_prefix_is_empty_or_ends_in_a_slash() {
    for ok in ["", "app1/", "tenants/app1/"] {
        assert_eq!(
            config(&[("CLAIMCHECK_KEY_PREFIX", ok)]).unwrap().key_prefix,
            ok
        );
    }
    for bad in ["app1", "/app1/", "a//b/", "app\u{0}/"] {
        let err = config(&[("CLAIMCHECK_KEY_PREFIX", bad)]).unwrap_err();
        assert_eq!(err.var, "CLAIMCHECK_KEY_PREFIX", "{bad:?}");
    }
}

#[test]
fn zero_unconsumed_ttl_keeps_uploads_forever() {
    let c = config(&[("CLAIMCHECK_UNCONSUMED_TTL", "0")]).unwrap();
    assert_eq!(c.unconsumed_ttl, None);
}

#[test]
fn bad_values_name_their_variable() {
    let err = config(&[("CLAIMCHECK_CLAIM_TTL", "soon")]).unwrap_err();
    assert_eq!(err.var, "CLAIMCHECK_CLAIM_TTL");
    let err = config(&[("CLAIMCHECK_PART_SIZE", "1MiB")]).unwrap_err();
    assert_eq!(err.var, "CLAIMCHECK_PART_SIZE");
    let err = config(&[("CLAIMCHECK_STORE", "s3")]).unwrap_err();
    assert_eq!(err.var, "CLAIMCHECK_S3_BUCKET");
    let err = config(&[("CLAIMCHECK_DELETE_BATCH", "0")]).unwrap_err();
    assert_eq!(err.var, "CLAIMCHECK_DELETE_BATCH");
}

#[test]
fn s3_public_endpoint_defaults_to_the_endpoint() {
    let c = config(&[
        ("CLAIMCHECK_STORE", "s3"),
        ("CLAIMCHECK_S3_BUCKET", "b"),
        ("CLAIMCHECK_S3_ENDPOINT", "http://s3:3900"),
    ])
    .unwrap();
    let StoreConfig::S3(s3) = c.store else {
        panic!("s3 expected")
    };
    assert_eq!(s3.public_endpoint.as_deref(), Some("http://s3:3900"));
}

#[test]
fn api_public_url_is_optional_and_checked() {
    assert_eq!(config(&[]).unwrap().api_public_url, None);
    let c = config(&[("CLAIMCHECK_API_PUBLIC_URL", "https://files.example/cc/")]).unwrap();
    assert_eq!(
        c.api_public_url.map(String::from).as_deref(),
        Some("https://files.example/cc/")
    );
    for bad in ["files.example", "ftp://x/", "https://x/?a=1", "mailto:a@b"] {
        let err = config(&[("CLAIMCHECK_API_PUBLIC_URL", bad)]).unwrap_err();
        assert_eq!(err.var, "CLAIMCHECK_API_PUBLIC_URL", "{bad}");
    }
}

#[test]
fn sizes_and_durations_parse() {
    assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
    assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
    assert_eq!(
        parse_duration("7d").unwrap(),
        Duration::from_secs(7 * 86400)
    );
    assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
}

#[test]
fn the_web_page_is_off_unless_a_directory_is_given() {
    assert_eq!(config(&[]).unwrap().web_dir, None);
    let c = config(&[("CLAIMCHECK_WEB_DIR", "/srv/claimcheck/web")]).unwrap();
    assert_eq!(c.web_dir, Some(PathBuf::from("/srv/claimcheck/web")));
}
