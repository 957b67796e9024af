//! Organisations, invitations and the membership rules, through the API.

use crate::harness::{error_code, TestServer, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tale_core::role::Role;

async fn role_in(u: &crate::harness::User, email: &str) -> Option<String> {
    let (_, b) = u.json(Method::GET, "/api/orgs/default/members", None).await;
    b["members"].as_array().unwrap().iter().find(|m| m["email"] == email).map(|m| m["role"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn invite_accept_and_change_roles() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let (s, inv) = owner.json(Method::POST, "/api/orgs/default/invitations", Some(json!({"email": "New.Person@Example.com", "role": "editor"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    let link = inv["link"].as_str().unwrap();
    assert!(link.starts_with(&format!("{}/invite/", ts.base)), "{link}");
    let token = link.rsplit('/').next().unwrap();
    let (_, pending) = owner.json(Method::GET, "/api/orgs/default/invitations", None).await;
    assert_eq!(pending["invitations"][0]["email"], "new.person@example.com");

    let anon = ts.anonymous();
    let (s, view) = anon.json(Method::GET, &format!("/api/invitations/{token}"), None).await;
    assert_eq!(s, 200);
    assert_eq!((view["role"].as_str(), view["accountExists"].as_bool()), (Some("editor"), Some(false)));
    let (s, b) = anon.json(Method::POST, &format!("/api/invitations/{token}/accept"), Some(json!({"name": "New Person", "password": "weak"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"));
    let (s, b) = anon.json(Method::POST, &format!("/api/invitations/{token}/accept"), Some(json!({"name": "New Person", "password": PASSWORD}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["redirect"], "/dashboard/default");
    let (s, _) = ts.anonymous().json(Method::POST, &format!("/api/invitations/{token}/accept"), Some(json!({"password": PASSWORD}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "an invitation works once");
    assert_eq!(anon.get("/api/me").await.status(), 200, "accepting signs the invitee in");
    assert_eq!(role_in(&owner, "new.person@example.com").await.as_deref(), Some("editor"));

    let editor_id = {
        let (_, b) = owner.json(Method::GET, "/api/orgs/default/members", None).await;
        b["members"].as_array().unwrap().iter().find(|m| m["email"] == "new.person@example.com").unwrap()["userId"].as_str().unwrap().to_owned()
    };
    let (s, b) = owner.json(Method::PATCH, &format!("/api/orgs/default/members/{editor_id}"), Some(json!({"role": "developer"}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["changes"][0]["to"], "developer");

    // The audit log has every step, with before/after.
    let (_, audit) = owner.json(Method::GET, "/api/orgs/default/audit?category=member", None).await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["role_changed", "invitation_accepted", "member_invited"]);
    let change = &audit["entries"][0];
    assert_eq!(change["previousState"]["roles"][&editor_id], "editor");
    assert_eq!(change["newState"]["roles"][&editor_id], "developer");
    assert_eq!(change["actorEmail"], "owner@example.com");
    assert_eq!(change["ipAddress"], "127.0.0.1");
}

#[tokio::test]
async fn existing_account_accepts_with_its_own_password() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let (_, org) = owner.json(Method::POST, "/api/orgs", Some(json!({"slug": "research", "name": "Research"}))).await;
    assert_eq!(org["slug"], "research");
    ts.member("ann@example.com", Role::Member).await;
    let (_, inv) = owner.json(Method::POST, "/api/orgs/research/invitations", Some(json!({"email": "ann@example.com", "role": "admin"}))).await;
    let token = inv["link"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let anon = ts.anonymous();
    let (_, view) = anon.json(Method::GET, &format!("/api/invitations/{token}"), None).await;
    assert_eq!(view["accountExists"], true);
    let (s, b) = anon.json(Method::POST, &format!("/api/invitations/{token}/accept"), Some(json!({"password": "Wrong-one-1"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::UNAUTHORIZED, "invalid_credentials"));
    let (s, _) = anon.json(Method::POST, &format!("/api/invitations/{token}/accept"), Some(json!({"password": PASSWORD}))).await;
    assert_eq!(s, 200);
    let ann = ts.sign_in("ann@example.com", PASSWORD).await;
    let (_, me) = ann.json(Method::GET, "/api/me", None).await;
    let orgs: Vec<(String, String)> = me["orgs"].as_array().unwrap().iter().map(|o| (o["slug"].as_str().unwrap().into(), o["role"].as_str().unwrap().into())).collect();
    assert_eq!(orgs, vec![("default".into(), "member".into()), ("research".into(), "admin".into())]);
    // Admin in one org, Member in the other: the role is per organisation.
    assert_eq!(ann.get("/api/orgs/research/members").await.status(), 200);
    assert_eq!(ann.get("/api/orgs/default/members").await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn membership_rules_are_enforced() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let admin = ts.member("admin@example.com", Role::Admin).await;
    let ed = ts.member("ed@example.com", Role::Editor).await;

    // Two-Admin minimum (the Owner counts): demoting the only other Admin is refused.
    let (s, b) = owner.json(Method::PATCH, &format!("/api/orgs/default/members/{}", admin.id), Some(json!({"role": "member"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "rule_violation"));
    assert!(b["error"]["message"].as_str().unwrap().contains("two Admins"));
    let (s, b) = owner.json(Method::DELETE, &format!("/api/orgs/default/members/{}", admin.id), None).await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "rule_violation"));
    // Admins cannot edit their own role, nor the Owner's, nor make an Owner.
    let (s, b) = admin.json(Method::PATCH, &format!("/api/orgs/default/members/{}", admin.id), Some(json!({"role": "member"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "rule_violation"));
    let (s, _) = admin.json(Method::PATCH, &format!("/api/orgs/default/members/{}", owner.id), Some(json!({"role": "admin"}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = admin.json(Method::PATCH, &format!("/api/orgs/default/members/{}", ed.id), Some(json!({"role": "owner"}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Only the Owner transfers ownership.
    let (s, b) = admin.json(Method::POST, "/api/orgs/default/transfer-ownership", Some(json!({"userId": ed.id}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::FORBIDDEN, "insufficient_role"));
    let (s, b) = owner.json(Method::POST, "/api/orgs/default/transfer-ownership", Some(json!({"userId": ed.id}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(role_in(&admin, "ed@example.com").await.as_deref(), Some("owner"));
    assert_eq!(role_in(&admin, "owner@example.com").await.as_deref(), Some("admin"));

    // Disabling keeps the record but shuts the org; re-enabling restores access.
    let (s, _) = admin.json(Method::PATCH, &format!("/api/orgs/default/members/{}", owner.id), Some(json!({"role": "disabled"}))).await;
    assert_eq!(s, 200);
    let (s, b) = owner.json(Method::GET, "/api/orgs/default", None).await;
    assert_eq!((s, error_code(&b)), (StatusCode::FORBIDDEN, "insufficient_role"));
    let (_, me) = owner.json(Method::GET, "/api/me", None).await;
    assert_eq!(me["orgs"], json!([]), "disabled orgs are left out of the list");
    let (s, _) = admin.json(Method::PATCH, &format!("/api/orgs/default/members/{}", owner.id), Some(json!({"role": "member"}))).await;
    assert_eq!(s, 200);
    assert_eq!(owner.get("/api/orgs/default").await.status(), 200);

    // Removal detaches; the account survives and can be invited back.
    let (s, _) = admin.json(Method::DELETE, &format!("/api/orgs/default/members/{}", owner.id), None).await;
    assert_eq!(s, 200);
    assert_eq!(owner.get("/api/orgs/default").await.status(), StatusCode::NOT_FOUND);
    let (_, inv) = admin.json(Method::POST, "/api/orgs/default/invitations", Some(json!({"email": "owner@example.com", "role": "member"}))).await;
    assert!(inv["link"].is_string(), "{inv}");
    let (s, b) = admin.json(Method::POST, "/api/orgs/default/invitations", Some(json!({"email": "ed@example.com", "role": "member"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "conflict"), "already a member");
    let (s, _) = admin.json(Method::POST, "/api/orgs/default/invitations", Some(json!({"email": "x@example.com", "role": "owner"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn invitations_can_be_revoked_and_org_creation_is_for_the_owner() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let admin = ts.member("admin@example.com", Role::Admin).await;
    let (_, inv) = admin.json(Method::POST, "/api/orgs/default/invitations", Some(json!({"email": "z@example.com", "role": "member"}))).await;
    let id = inv["invitation"]["id"].as_str().unwrap();
    let token = inv["link"].as_str().unwrap().rsplit('/').next().unwrap();
    assert_eq!(admin.send(Method::DELETE, &format!("/api/orgs/default/invitations/{id}"), None).await.status(), StatusCode::NO_CONTENT);
    let (s, _) = ts.anonymous().json(Method::GET, &format!("/api/invitations/{token}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let page = ts.anonymous().get(&format!("/invite/{token}")).await.text().await.unwrap();
    assert!(page.contains("cannot be used"));

    let (s, b) = admin.json(Method::POST, "/api/orgs", Some(json!({"slug": "x", "name": "X"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::FORBIDDEN, "insufficient_role"));
    let (s, b) = owner.json(Method::POST, "/api/orgs", Some(json!({"slug": "Bad Slug", "name": "X"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "invalid_input"));
    let (s, _) = owner.json(Method::POST, "/api/orgs", Some(json!({"slug": "team-a", "name": "Team A"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = owner.json(Method::POST, "/api/orgs", Some(json!({"slug": "team-a", "name": "Again"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "conflict"));
    let (_, orgs) = owner.json(Method::GET, "/api/orgs", None).await;
    assert_eq!(orgs["organizations"].as_array().unwrap().len(), 2);
    // The new org has its own audit chain, starting with its creation.
    let (_, a) = owner.json(Method::GET, "/api/orgs/team-a/audit", None).await;
    let entries: &Vec<Value> = a["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0]["action"].as_str(), entries[0]["seq"].as_i64()), (Some("organization_created"), Some(1)));
}

#[tokio::test]
async fn settings_are_validated_saved_and_audited() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let (s, mut settings) = owner.json(Method::GET, "/api/orgs/default/settings", None).await;
    assert_eq!(s, 200);
    assert_eq!(settings["loginPolicy"]["backoffSecs"], json!([1, 10, 60, 600]));
    settings["passwordPolicy"]["minLength"] = json!(3);
    let (s, b) = owner.json(Method::PUT, "/api/orgs/default/settings", Some(settings.clone())).await;
    assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "invalid_input"));
    settings["passwordPolicy"]["minLength"] = json!(12);
    settings["passwordPolicy"]["requireSpecial"] = json!(true);
    let (s, _) = owner.json(Method::PUT, "/api/orgs/default/settings", Some(settings)).await;
    assert_eq!(s, 200);
    let (_, a) = owner.json(Method::GET, "/api/orgs/default/audit?category=admin&limit=1", None).await;
    let e = &a["entries"][0];
    assert_eq!(e["action"], "settings_updated");
    assert_eq!(e["newState"]["passwordPolicy"]["minLength"], 12);
    assert_eq!(e["changedFields"], json!(["passwordPolicy"]));
    assert_eq!(e["previousState"]["passwordPolicy"]["minLength"], 8, "first save records the defaults as before");
    // The new policy applies at once.
    let (s, b) = owner.json(Method::POST, "/api/me/password", Some(json!({"currentPassword": PASSWORD, "newPassword": "Short-pw-12"}))).await;
    assert_eq!((s, error_code(&b)), (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"));
    assert!(b["error"]["message"].as_str().unwrap().contains("12 characters"));
}

#[tokio::test]
async fn an_invitation_opens_in_a_browser_that_holds_another_session() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let (_, inv) = owner.json(Method::POST, "/api/orgs/default/invitations", Some(json!({"email": "colleague@example.com", "role": "member"}))).await;
    let token = inv["link"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    // Same cookie jar as the Owner, no CSRF header: public routes follow the same-origin rule.
    let mut browser = owner.clone();
    browser.csrf = None;
    let (s, b) = browser.json(Method::POST, &format!("/api/invitations/{token}/accept"), Some(json!({"name": "Col", "password": PASSWORD}))).await;
    assert_eq!(s, 200, "{b}");
    let cross = reqwest::Client::new()
        .post(ts.url(&format!("/api/invitations/{token}/accept")))
        .header("origin", "https://evil.example")
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN, "other origins are still refused");
}
