//! Walks every served route as every role and checks allow/deny against the permission matrix.
//! The route list comes from the router's own table, so a new route is covered automatically.

use crate::harness::{TestServer, User};
use reqwest::{Method, StatusCode};
use tale_core::permission::Access;
use tale_core::role::Role;
use tale_http::auth::Kind;

fn concrete(path: &str) -> String {
    path.replace("{org}", "default")
        .replace("{user_id}", "00000000-0000-0000-0000-000000000000")
        .replace("{id}", "00000000-0000-0000-0000-000000000000")
        .replace("{token}", "not-a-token")
        .replace("{file}", "app.css")
        .replace("{mid}", "00000000-0000-0000-0000-000000000000")
        .replace("{aid}", "00000000-0000-0000-0000-000000000000")
        .replace("{slug}", "no-such-slug")
        .replace("{version}", "1")
}

/// True when the response says the caller lacks the role.
async fn denied(kind: Kind, r: reqwest::Response) -> bool {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    match kind {
        Kind::Api => status == StatusCode::FORBIDDEN && body.contains("insufficient_role"),
        Kind::Page => status == StatusCode::FORBIDDEN && body.contains("Access denied"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_as_every_role() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let mut users: Vec<(Role, User)> = vec![(Role::Owner, owner)];
    for role in [Role::Admin, Role::Developer, Role::Editor, Role::Member, Role::Disabled] {
        let email = format!("{}@example.com", role.as_str());
        if role == Role::Disabled {
            ts.services().admin_create_user(&email, None, crate::harness::PASSWORD, Role::Member, "default").await.unwrap();
            let u = ts.sign_in(&email, crate::harness::PASSWORD).await;
            ts.services().admin_set_role(&email, Role::Disabled, "default").await.unwrap();
            users.push((role, u));
        } else {
            users.push((role, ts.member(&email, role).await));
        }
    }
    let specs = tale_http::routes::specs();
    assert!(specs.len() >= 40, "route table unexpectedly small");
    let mut checked = 0;
    for spec in &specs {
        if spec.path == "/api/ws" {
            continue; // a WebSocket upgrade; covered by the ws tests role by role
        }
        let method = Method::from_bytes(spec.method.as_bytes()).unwrap();
        let path = concrete(spec.path);
        for (role, user) in users.iter_mut() {
            let body = (method != Method::GET).then(|| serde_json::json!({}));
            let r = user.send(method.clone(), &path, body).await;
            let status = r.status();
            let expect_allowed = match spec.access {
                Access::Public | Access::SignedIn => true,
                Access::Org(p) | Access::Instance(p) | Access::Caller(p) => p.allows(*role),
            };
            let was_denied = denied(spec.kind, r).await;
            if expect_allowed {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{} {} as {role}: session lost", spec.method, spec.path);
            }
            assert_eq!(
                !was_denied, expect_allowed,
                "{} {} as {role}: got {status}, expected {}",
                spec.method, spec.path, if expect_allowed { "allowed" } else { "denied" }
            );
            checked += 1;
            if spec.path.starts_with("/api/auth/sign-out") {
                // That request ended the session: sign the same account in again.
                *user = ts.sign_in(&user.email, crate::harness::PASSWORD).await;
            }
        }
        // Without credentials every non-public route refuses (401 or a redirect to sign-in).
        if !matches!(spec.access, Access::Public) {
            let r = ts.anonymous().send(method.clone(), &path, None).await;
            let status = r.status();
            assert!(
                status == StatusCode::UNAUTHORIZED || (spec.kind == Kind::Page && status.is_redirection()) || status == StatusCode::FORBIDDEN,
                "{} {} anonymous: {status}", spec.method, spec.path
            );
        }
    }
    assert!(checked >= 200);
}
