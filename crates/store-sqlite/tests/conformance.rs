//! The shared store conformance suite, run against SQLite, plus SQLite-specific open behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test suite: a failed step is a panic")]

use std::sync::Arc;
use tale_core::store::Store;
use tale_store_sqlite::{OpenError, SqliteStore};

async fn fresh() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tale.db")).await.unwrap();
    // The directory must outlive the test; leaking one temp dir per test is fine.
    std::mem::forget(dir);
    Arc::new(store)
}

tale_core::conformance_suite!(fresh());

#[tokio::test]
async fn corrupt_file_is_reported_as_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tale.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let err = SqliteStore::open(&path).await.err().unwrap();
    assert!(matches!(err, OpenError::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("not a Tale database"), "{err}");
}

#[tokio::test]
async fn audit_rows_cannot_be_deleted_or_rewritten_through_sql() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tale.db")).await.unwrap();
    let org = tale_core::model::Org { id: "o".into(), slug: "default".into(), name: "D".into(), created_at: 0 };
    let meta = tale_core::audit::RequestMeta::default();
    let actor = tale_core::audit::Actor::cli();
    use tale_core::store::{AuditStore, OrgStore};
    let owner = tale_core::model::User {
        id: "u".into(), email: "o@example.com".into(), name: "o".into(), password_hash: "x".into(),
        must_change_password: false, created_at: 0, password_changed_at: 0,
    };
    let d = tale_core::audit::AuditDraft::new("o", &actor, &meta, tale_core::audit::Category::Admin, "setup", "organization");
    store.bootstrap(&org, &owner, d.clone()).await.unwrap();
    store.append_audit(d).await.unwrap();
    let del = sqlx::query("DELETE FROM audit_log").execute(store.pool()).await;
    assert!(del.unwrap_err().to_string().contains("cannot be deleted"));
    let upd = sqlx::query("UPDATE audit_log SET action = 'x'").execute(store.pool()).await;
    assert!(upd.unwrap_err().to_string().contains("append-only"));
}
