//! The audit log through the API and the CLI: what gets recorded, filters, export, and tamper
//! detection when someone edits the database file directly.

use crate::harness::{error_code, TestServer, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tale_core::role::Role;

/// Plays an attacker with write access to the database file.
async fn tamper(ts: &TestServer, sql: &str) {
    let url = format!("sqlite://{}", ts.data_dir().join("tale.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER IF EXISTS audit_log_no_update").execute(&mut conn).await.unwrap();
    sqlx::query("DROP TRIGGER IF EXISTS audit_log_no_delete").execute(&mut conn).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
}

#[tokio::test]
async fn sign_ins_and_changes_are_recorded_with_actor_ip_and_agent() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let _ = ts.anonymous().post("/api/auth/sign-in", json!({"email": "owner@example.com", "password": "Bad-password-1"})).await;
    let _ = ts.anonymous().post("/api/auth/sign-in", json!({"email": "owner@example.com", "password": PASSWORD})).await;
    let _ = owner.post("/api/orgs/default/api-keys", json!({"name": "k"})).await;
    let (_, a) = owner.json(Method::GET, "/api/orgs/default/audit", None).await;
    let entries = a["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["api_key_created", "sign_in", "sign_in_failed", "sign_in", "setup_completed"]);
    let failed = &entries[2];
    assert_eq!((failed["status"].as_str(), failed["category"].as_str()), (Some("failure"), Some("auth")));
    assert_eq!(failed["actorEmail"], "owner@example.com");
    assert_eq!(failed["ipAddress"], "127.0.0.1");
    assert!(!a.to_string().contains(PASSWORD), "no password in the audit log");
    assert!(!a.to_string().contains("Bad-password-1"));
    // Filters: category, actor, time.
    let (_, auth) = owner.json(Method::GET, "/api/orgs/default/audit?category=auth", None).await;
    assert_eq!(auth["entries"].as_array().unwrap().len(), 3);
    let (_, none) = owner.json(Method::GET, "/api/orgs/default/audit?actor=someone-else", None).await;
    assert_eq!(none["entries"].as_array().unwrap().len(), 0);
    let (_, future) = owner.json(Method::GET, "/api/orgs/default/audit?from=2100-01-01T00:00:00Z", None).await;
    assert_eq!(future["entries"].as_array().unwrap().len(), 0);
    let (s, b) = owner.json(Method::GET, "/api/orgs/default/audit?category=nonsense", None).await;
    assert_eq!((s, error_code(&b)), (StatusCode::BAD_REQUEST, "invalid_input"));
}

#[tokio::test]
async fn export_follows_the_current_filter() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    ts.member("m@example.com", Role::Member).await;
    let r = owner.get("/api/orgs/default/audit/export?format=csv&category=auth").await;
    assert_eq!(r.status(), 200);
    let disposition = r.headers().get("content-disposition").unwrap().to_str().unwrap().to_owned();
    assert!(disposition.contains("audit-logs-") && disposition.ends_with(".csv\""), "{disposition}");
    let csv = r.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "timestamp,action,category,actorEmail,actorId,actorType,actorRole,resourceType,resourceId,resourceName,status,errorMessage"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "two sign-ins: {csv}");
    assert!(rows.iter().all(|r| r.contains(",sign_in,auth,")));
    let r = owner.get("/api/orgs/default/audit/export?format=json").await;
    let rows: Vec<Value> = r.json().await.unwrap();
    assert!(rows.iter().any(|r| r["action"] == "member_added"));
    assert!(rows.iter().all(|r| r["integrityHash"].as_str().is_some_and(|h| h.len() == 64)));
    let (s, _) = owner.json(Method::GET, "/api/orgs/default/audit/export?format=xml", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn edited_and_deleted_rows_are_detected_by_api_and_cli() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    for i in 0..3 {
        owner.post("/api/orgs/default/api-keys", json!({"name": format!("k{i}")})).await;
    }
    let (_, v) = owner.json(Method::POST, "/api/orgs/default/audit/verify", Some(json!({}))).await;
    assert_eq!((v["intact"].as_bool(), v["rows"].as_u64()), (Some(true), Some(5)), "{v}");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_tale"))
        .args(["admin", "verify-audit", "--data-dir"])
        .arg(ts.data_dir())
        .output()
        .unwrap();
    assert!(cli.status.success());
    assert!(String::from_utf8_lossy(&cli.stdout).contains("ok      default: 5 entries, chain intact"));

    tamper(&ts, "UPDATE audit_log SET resource_name = 'innocent' WHERE seq = 3").await;
    let (_, v) = owner.json(Method::POST, "/api/orgs/default/audit/verify", Some(json!({}))).await;
    assert_eq!(v["intact"], false);
    assert_eq!(v["broken"]["seq"], 3);
    assert!(v["broken"]["reason"].as_str().unwrap().contains("edited"));
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_tale"))
        .args(["admin", "verify-audit", "--data-dir"])
        .arg(ts.data_dir())
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(1));
    let out = String::from_utf8_lossy(&cli.stdout);
    assert!(out.contains("BROKEN  default: first broken link at entry #3"), "{out}");
    assert!(String::from_utf8_lossy(&cli.stderr).contains("tampered"));
}

#[tokio::test]
async fn removing_the_newest_row_is_detected() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    owner.post("/api/orgs/default/api-keys", json!({"name": "k"})).await;
    tamper(&ts, "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)").await;
    let (_, v) = owner.json(Method::POST, "/api/orgs/default/audit/verify", Some(json!({}))).await;
    assert_eq!(v["intact"], false, "{v}");
    assert!(v["broken"]["reason"].as_str().unwrap().contains("removed"));
}
