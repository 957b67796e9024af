//! Health, readiness, metrics and the headers every response carries.

use crate::harness::TestServer;
use reqwest::StatusCode;
use tale_core::config::Secret;

#[tokio::test]
async fn health_ready_and_security_headers() {
    let ts = TestServer::boot().await;
    let r = reqwest::get(ts.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::get(ts.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.contains_key("x-request-id"));
    let page = reqwest::get(ts.url("/sign-in")).await.unwrap();
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_honour_the_token() {
    let ts = TestServer::boot_with(|c| c.metrics_bearer_token = Some(Secret::new("metrics-token"))).await;
    for _ in 0..3 {
        reqwest::get(ts.url("/healthz")).await.unwrap();
    }
    let c = reqwest::Client::new();
    let r = c.get(ts.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c.get(ts.url("/metrics")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let text = c.get(ts.url("/metrics")).bearer_auth("metrics-token").send().await.unwrap().text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("tale_http_requests_total") && l.contains("route=\"/healthz\"") && l.contains("status=\"200\""))
        .unwrap_or_else(|| panic!("no healthz counter in:\n{text}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(text.contains("tale_http_request_duration_seconds_bucket"), "latency histogram present");
}

#[tokio::test]
async fn readiness_turns_off_while_draining() {
    let mut ts = TestServer::boot().await;
    ts.server.as_ref().unwrap().state.start_draining();
    let r = reqwest::get(ts.url("/readyz")).await;
    // Either the request is refused (listener closing) or answered 503; never a 200.
    if let Ok(r) = r {
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    ts.stop().await;
}
