//! Setup, sign-in, lockout, sessions, CSRF, API keys, and the bad inputs the API must refuse
//! with a clear JSON error.

use crate::harness::{error_code, TestServer, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Instant;
use tale_core::role::Role;

#[tokio::test]
async fn setup_needs_the_token_and_closes_after_the_owner_exists() {
    let ts = TestServer::boot().await;
    let anon = ts.anonymous();
    let (s, b) = anon.json(Method::GET, "/api/setup", None).await;
    assert_eq!((s, b["setupNeeded"].as_bool()), (StatusCode::OK, Some(true)));

    let body = json!({"token": "wrong", "email": "a@example.com", "name": "A", "password": PASSWORD});
    let (s, b) = anon.json(Method::POST, "/api/setup", Some(body)).await;
    assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "invalid_input"));
    assert!(b["error"]["message"].as_str().unwrap().contains("setup token"));

    let weak = json!({"token": ts.setup_token(), "email": "a@example.com", "name": "A", "password": "short"});
    let (s, b) = anon.json(Method::POST, "/api/setup", Some(weak)).await;
    assert_eq!((s, error_code(&b)), (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"));
    assert!(b["error"]["message"].as_str().unwrap().contains("at least 8 characters"));

    let owner = ts.owner().await;
    let (s, me) = owner.json(Method::GET, "/api/me", None).await;
    assert_eq!(s, 200);
    assert_eq!(me["orgs"][0]["slug"], "default");
    assert_eq!(me["orgs"][0]["role"], "owner");

    let again = json!({"token": "x", "email": "b@example.com", "name": "B", "password": PASSWORD});
    let (s, b) = ts.anonymous().json(Method::POST, "/api/setup", Some(again)).await;
    assert_eq!((s, error_code(&b)), (StatusCode::GONE, "setup_closed"));
    let page = ts.anonymous().get("/setup").await.text().await.unwrap();
    assert!(page.contains("already set up"));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let ts = TestServer::boot().await;
    ts.owner().await;
    let attempt = |email: &'static str| {
        let u = ts.anonymous();
        async move {
            let started = Instant::now();
            let (s, b) = u.json(Method::POST, "/api/auth/sign-in", Some(json!({"email": email, "password": "Wrong-pass-1"}))).await;
            (s, b, started.elapsed())
        }
    };
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        let (s1, b1, t1) = attempt("owner@example.com").await;
        let (s2, b2, t2) = attempt("nobody@example.com").await;
        assert_eq!((s1, s2), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
        assert_eq!(b1, b2, "identical bodies");
        assert_eq!(error_code(&b1), "invalid_credentials");
        known.push(t1);
        unknown.push(t2);
    }
    known.sort();
    unknown.sort();
    // Both paths run one argon2 verification; without the dummy hash an unknown user would answer
    // in well under a millisecond. Generous bounds: this checks the mechanism, not a speed.
    assert!(unknown[1] * 4 > known[1], "unknown user answered too fast: {unknown:?} vs {known:?}");
}

#[tokio::test]
async fn repeated_failures_lock_the_account_even_for_the_right_password() {
    let ts = TestServer::boot().await;
    ts.owner().await;
    let u = ts.anonymous();
    for _ in 0..5 {
        let (s, _) = u.json(Method::POST, "/api/auth/sign-in", Some(json!({"email": "owner@example.com", "password": "Nope-nope-1"}))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let r = u.post("/api/auth/sign-in", json!({"email": "owner@example.com", "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(error_code(&b), "account_locked");
    // Unknown addresses lock the same way, so lockout reveals nothing about who has an account.
    for _ in 0..5 {
        u.post("/api/auth/sign-in", json!({"email": "ghost@example.com", "password": "Nope-nope-1"})).await;
    }
    let (s, b) = u.json(Method::POST, "/api/auth/sign-in", Some(json!({"email": "ghost@example.com", "password": "x"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::TOO_MANY_REQUESTS, "account_locked"));
    // The operator lifts the lock by resetting the password.
    let new = ts.services().admin_reset_password("owner@example.com", None).await.unwrap();
    let (s, b) = u.json(Method::POST, "/api/auth/sign-in", Some(json!({"email": "owner@example.com", "password": new}))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["mustChangePassword"], true);
    assert_eq!(b["redirect"], "/account");
    // Until the password is changed, nothing but the account routes work.
    let mut u = u.clone();
    u.csrf = b["csrfToken"].as_str().map(str::to_owned);
    let (s, e) = u.json(Method::GET, "/api/orgs/default/members", None).await;
    assert_eq!((s, error_code(&e)), (StatusCode::FORBIDDEN, "password_change_required"));
    assert_eq!(u.get("/dashboard/default/members").await.headers()["location"], "/account");
    assert_eq!(u.get("/api/me").await.status(), 200);
    let (s, _) = u.json(Method::POST, "/api/me/password", Some(json!({"currentPassword": new, "newPassword": "Brand-new-pass-3"}))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(u.get("/api/orgs/default/members").await.status(), 200);
}

#[tokio::test]
async fn session_cookie_flags_csrf_and_forged_or_expired_cookies() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let r = ts.anonymous().post("/api/auth/sign-in", json!({"email": "owner@example.com", "password": PASSWORD})).await;
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(cookie.starts_with("tale_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(!cookie.contains("Secure"), "plain-HTTP site must not set Secure");

    // Missing and wrong CSRF tokens on a cookie-authenticated change.
    let mut no_csrf = owner.clone();
    no_csrf.csrf = None;
    let (s, b) = no_csrf.json(Method::POST, "/api/orgs/default/invitations", Some(json!({"email": "x@example.com", "role": "member"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::FORBIDDEN, "csrf_rejected"));
    no_csrf.csrf = Some("forged".into());
    let (s, b) = no_csrf.json(Method::POST, "/api/orgs/default/invitations", Some(json!({"email": "x@example.com", "role": "member"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::FORBIDDEN, "csrf_rejected"));
    let (s, _) = owner.json(Method::POST, "/api/orgs/default/invitations", Some(json!({"email": "x@example.com", "role": "member"}))).await;
    assert_eq!(s, StatusCode::CREATED);

    // A forged cookie is no session at all.
    let forged = reqwest::Client::new();
    let r = forged.get(ts.url("/api/me")).header("cookie", "tale_session=forged-value").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let page = forged.get(ts.url("/dashboard/default/members")).header("cookie", "tale_session=forged").send().await.unwrap();
    assert_eq!(page.url().path(), "/sign-in", "pages send a forged session to sign-in");
    assert_eq!(page.url().query(), Some("next=/dashboard/default/members"));

    // An expired session stops working on the server, even if a client keeps sending it.
    let mut short = TestServer::boot_with(|c| c.session_ttl_secs = 1).await;
    let o = short.owner().await;
    let with_cookie = || reqwest::Client::new().get(short.url("/api/me")).header("cookie", o.cookie.clone()).send();
    assert_eq!(with_cookie().await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(with_cookie().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    short.stop().await;
}

#[tokio::test]
async fn cross_origin_sign_in_is_refused() {
    let ts = TestServer::boot().await;
    ts.owner().await;
    let r = reqwest::Client::new()
        .post(ts.url("/api/auth/sign-in"))
        .header("origin", "https://evil.example")
        .json(&json!({"email": "owner@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_out_and_sign_out_everywhere() {
    let ts = TestServer::boot().await;
    let a = ts.owner().await;
    let b = ts.sign_in("owner@example.com", PASSWORD).await;
    let c = ts.sign_in("owner@example.com", PASSWORD).await;
    let r = a.post("/api/auth/sign-out", json!({})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(a.get("/api/me").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(b.get("/api/me").await.status(), StatusCode::OK);
    let (s, body) = b.json(Method::POST, "/api/auth/sign-out-everywhere", Some(json!({}))).await;
    assert_eq!((s, body["sessionsEnded"].as_u64()), (StatusCode::OK, Some(2)));
    assert_eq!(b.get("/api/me").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(c.get("/api/me").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn password_change_checks_current_password_and_policy() {
    let ts = TestServer::boot().await;
    let o = ts.owner().await;
    let (s, b) = o.json(Method::POST, "/api/me/password", Some(json!({"currentPassword": "bad", "newPassword": "New-password-2"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::UNAUTHORIZED, "invalid_credentials"));
    let (s, b) = o.json(Method::POST, "/api/me/password", Some(json!({"currentPassword": PASSWORD, "newPassword": "alllowercase"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"));
    let elsewhere = ts.sign_in("owner@example.com", PASSWORD).await;
    let (s, _) = o.json(Method::POST, "/api/me/password", Some(json!({"currentPassword": PASSWORD, "newPassword": "New-password-2"}))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(o.get("/api/me").await.status(), 200, "the changing session stays");
    assert_eq!(elsewhere.get("/api/me").await.status(), StatusCode::UNAUTHORIZED, "other sessions end");
    ts.sign_in("owner@example.com", "New-password-2").await;
    // Guessing the current password counts towards the lockout like sign-in does.
    for _ in 0..5 {
        let (s, _) = o.json(Method::POST, "/api/me/password", Some(json!({"currentPassword": "Guess-1234", "newPassword": "Other-pass-3"}))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, b) = o.json(Method::POST, "/api/me/password", Some(json!({"currentPassword": "New-password-2", "newPassword": "Other-pass-3"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::TOO_MANY_REQUESTS, "account_locked"));
}

#[tokio::test]
async fn api_keys_are_shown_once_work_as_bearer_and_stop_when_revoked() {
    let ts = TestServer::boot().await;
    ts.owner().await;
    let dev = ts.member("dev@example.com", Role::Developer).await;
    let (s, created) = dev.json(Method::POST, "/api/orgs/default/api-keys", Some(json!({"name": "ci"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tale_") && secret.len() == 45, "{secret}");
    let (_, list) = dev.json(Method::GET, "/api/orgs/default/api-keys", None).await;
    assert!(!list.to_string().contains(&secret), "the secret is never listed");
    assert_eq!(list["apiKeys"][0]["prefix"], &secret[..12]);

    let bearer = reqwest::Client::new();
    let me = bearer.get(ts.url("/api/me")).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["user"]["email"], "dev@example.com");
    // Bearer requests need no CSRF token.
    let r = bearer.post(ts.url("/api/orgs/default/api-keys")).bearer_auth(&secret).json(&json!({"name": "from-key"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // The key carries its user's role: a Developer may not read members.
    let r = bearer.get(ts.url("/api/orgs/default/members")).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let id = created["id"].as_str().unwrap();
    assert_eq!(dev.send(Method::DELETE, &format!("/api/orgs/default/api-keys/{id}"), None).await.status(), StatusCode::NO_CONTENT);
    let r = bearer.get(ts.url("/api/me")).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    let r = bearer.get(ts.url("/api/me")).header("authorization", "Basic abc").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_json_wrong_type_oversized_body_unknown_route() {
    let ts = TestServer::boot_with(|c| c.max_body_bytes = 4096).await;
    let o = ts.owner().await;
    let raw = |body: &'static str, ctype: &'static str| {
        let req = o.client.post(ts.url("/api/orgs/default/invitations")).header("x-csrf-token", o.csrf.clone().unwrap()).header("content-type", ctype).body(body);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status();
            (s, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (s, b) = raw("{\"email\": ", "application/json").await;
    assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "malformed_json"));
    let (s, b) = raw("{\"email\": 5, \"role\": \"member\"}", "application/json").await;
    assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "invalid_input"));
    let (s, b) = raw("{\"email\": \"a@example.com\", \"role\": \"emperor\"}", "application/json").await;
    assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "invalid_input"));
    let (s, b) = raw("email=a", "application/x-www-form-urlencoded").await;
    assert_eq!((s, error_code(&b)), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));

    let big = format!("{{\"email\": \"{}@example.com\", \"role\": \"member\"}}", "a".repeat(5000));
    let r = o.client.post(ts.url("/api/orgs/default/invitations")).header("x-csrf-token", o.csrf.clone().unwrap()).header("content-type", "application/json").body(big).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&r.json().await.unwrap()), "payload_too_large");

    let (s, b) = o.json(Method::GET, "/api/does-not-exist", None).await;
    assert_eq!((s, error_code(&b)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, b) = o.json(Method::DELETE, "/api/me", None).await;
    assert_eq!((s, error_code(&b)), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let (s, b) = o.json(Method::GET, "/api/orgs/nope/members", None).await;
    assert_eq!((s, error_code(&b)), (StatusCode::NOT_FOUND, "not_found"));
    let page = o.get("/no/such/page").await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page.text().await.unwrap().contains("<h1>Not found</h1>"));
}

#[tokio::test]
async fn an_operator_reset_from_another_process_ends_sessions_on_the_running_server() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    assert_eq!(owner.get("/api/me").await.status(), 200);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tale"))
        .args(["admin", "reset-password", "--email", "owner@example.com", "--data-dir"])
        .arg(ts.data_dir())
        .output()
        .unwrap();
    assert!(out.status.success());
    // The server learns of the commit through its change feed (polled every 500 ms).
    let started = Instant::now();
    while owner.get("/api/me").await.status() == 200 {
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "session still valid after the reset");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(owner.get("/api/me").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn https_site_gets_a_secure_prefixed_cookie() {
    let ts = TestServer::boot_with(|c| c.site_url = "https://tale.example.com".into()).await;
    let r = ts
        .anonymous()
        .post("/api/setup", json!({"token": ts.setup_token(), "email": "o@example.com", "name": "O", "password": PASSWORD}))
        .await;
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Secure-tale_session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(r.headers().get("strict-transport-security").is_some());
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_client_address() {
    let ts = TestServer::boot().await;
    ts.owner().await;
    let u = ts.anonymous();
    // Different unknown addresses, so the per-account lockout never triggers: only the IP limit.
    for i in 0..30 {
        let (s, _) = u.json(Method::POST, "/api/auth/sign-in", Some(json!({"email": format!("n{i}@example.com"), "password": "x"}))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = u.post("/api/auth/sign-in", json!({"email": "owner@example.com", "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(error_code(&r.json().await.unwrap()), "rate_limited");
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    for (trusted, expected) in [(false, "127.0.0.1"), (true, "203.0.113.7")] {
        let ts = TestServer::boot_with(|c| {
            if trusted {
                c.trusted_proxies = vec!["loopback".into()];
            }
        })
        .await;
        let owner = ts.owner().await;
        let r = reqwest::Client::new()
            .post(ts.url("/api/auth/sign-in"))
            .header("x-forwarded-for", "203.0.113.7")
            .json(&json!({"email": "owner@example.com", "password": "Wrong-password-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let (_, a) = owner.json(Method::GET, "/api/orgs/default/audit?limit=1", None).await;
        assert_eq!(a["entries"][0]["action"], "sign_in_failed");
        assert_eq!(a["entries"][0]["ipAddress"], expected, "trusted = {trusted}");
    }
}

#[tokio::test]
async fn an_expired_password_must_be_changed_and_page_views_slide_the_cookie() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let page = owner.get("/dashboard/default").await;
    let cookie = page.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(cookie.starts_with("tale_session=") && cookie.contains("Max-Age=604800"), "page views renew the cookie: {cookie}");

    let (_, mut settings) = owner.json(Method::GET, "/api/orgs/default/settings", None).await;
    settings["passwordPolicy"]["rotationDays"] = json!(30);
    assert_eq!(owner.json(Method::PUT, "/api/orgs/default/settings", Some(settings)).await.0, 200);
    // Pretend the password was set 31 days ago.
    let url = format!("sqlite://{}", ts.data_dir().join("tale.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    let old = tale_core::id::now_ms() - 31 * 86_400_000;
    sqlx::query("UPDATE users SET password_changed_at = ?").bind(old).execute(&mut conn).await.unwrap();

    let u = ts.anonymous();
    let (s, b) = u.json(Method::POST, "/api/auth/sign-in", Some(json!({"email": "owner@example.com", "password": PASSWORD}))).await;
    assert_eq!((s, b["mustChangePassword"].as_bool()), (StatusCode::OK, Some(true)));
    let mut u = u.clone();
    u.csrf = b["csrfToken"].as_str().map(str::to_owned);
    let (s, e) = u.json(Method::GET, "/api/orgs/default/members", None).await;
    assert_eq!((s, error_code(&e)), (StatusCode::FORBIDDEN, "password_change_required"));
    let (s, _) = u.json(Method::POST, "/api/me/password", Some(json!({"currentPassword": PASSWORD, "newPassword": "Fresh-password-4"}))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(u.get("/api/orgs/default/members").await.status(), 200);
}
