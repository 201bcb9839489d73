//! Item 14: `claimcheck_http_requests_total{route, method, status}` keeps a
//! bounded set of label values whatever unauthenticated clients send:
//! methods outside the standard set count as `other`, and paths no route
//! matches as the route `unmatched`.

use std::collections::BTreeSet;

use claimcheck_tests::app::{Store, TestApp};
use reqwest::Method;

/// The standard methods (RFC 9110 and PATCH) and `other`.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other",
];

/// The values of `label` on the HTTP request counter's series.
fn label_values(metrics: &str, label: &str) -> BTreeSet<String> {
    let needle = format!("{label}=\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("claimcheck_http_requests_total{"))
        .filter_map(|l| {
            let start = l.find(&needle)? + needle.len();
            let len = l[start..].find('"')?;
            Some(l[start..start + len].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn random_methods_and_paths_add_no_label_values() {
    let app = TestApp::spawn(Store::Fs).await;
    let scrape = || async {
        let res = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
        res.text().await.unwrap()
    };
    let marker = uuid::Uuid::new_v4().simple().to_string()[..12].to_uppercase();
    let before = scrape().await;
    let mut sent = 0;
    for i in 0..20 {
        let method = Method::from_bytes(format!("M{marker}{i}").as_bytes()).unwrap();
        for path in [
            "/v1/uploads".to_owned(),
            "/healthz".to_owned(),
            format!("/nothing-{marker}-{i}"),
        ] {
            // No token: cardinality must not be an unauthenticated lever.
            let res = app
                .http
                .request(method.clone(), format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            assert!(res.status().is_client_error(), "{method} {path}");
            sent += 1;
        }
    }
    for method in ["get", "Post", "PROPFIND"] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let res = app
            .http
            .request(method.clone(), format!("{}/v1/uploads", app.base))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{method}");
        sent += 1;
    }
    let after = scrape().await;
    assert!(
        !after.to_lowercase().contains(&marker.to_lowercase()),
        "a random method or path became a label value"
    );
    for method in label_values(&after, "method") {
        assert!(
            METHODS.contains(&method.as_str()),
            "method label {method:?}"
        );
    }
    let routes_before = label_values(&before, "route");
    for route in label_values(&after, "route") {
        assert!(
            route == "unmatched" || route.starts_with('/') && route.len() < 64,
            "route label {route:?}"
        );
        assert!(
            routes_before.contains(&route)
                || ["unmatched", "/v1/uploads", "/healthz", "/metrics"].contains(&route.as_str()),
            "a new route label {route:?}"
        );
    }
    let others: u64 = after
        .lines()
        .filter(|l| {
            l.starts_with("claimcheck_http_requests_total{") && l.contains("method=\"other\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(others, sent, "every odd method counted as other");
}
