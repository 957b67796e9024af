//! The store conformance suite: what every backend must do, checked through the traits only.
//!
//! A backend runs it with [`crate::conformance_suite!`], giving an async expression that makes a
//! fresh, empty store; each check becomes its own `#[tokio::test]`.
#![allow(clippy::unwrap_used, clippy::panic, reason = "a test suite: a failed check is a panic")]

use crate::audit::{self, Actor, AuditDraft, AuditFilter, Category, RequestMeta};
use crate::id::{new_id, now_ms};
use crate::model::{ApiKey, Invitation, Org, Session, User};
use crate::settings::LoginPolicy;
use crate::store::EndSessions;
use crate::role::Role;
use crate::rules::RoleRequest;
use crate::store::Store;
use crate::Error;
use serde_json::json;
use std::sync::Arc;

/// Expands to one test per check, each on a fresh store from `$make`.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@tests $make;
            users_and_setup, sessions, login_attempts, api_keys, orgs_and_members, role_rules_are_atomic,
            invitations, settings_are_audited_with_before_and_after, audit_chain_stays_intact_under_concurrency,
            audit_queries_filter_and_page);
    };
    (@tests $make:expr; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store: std::sync::Arc<dyn $crate::store::Store> = $make.await;
                $crate::conformance::$name(store).await;
            }
        )+
    };
}

fn user(email: &str) -> User {
    let now = now_ms();
    User {
        id: new_id(),
        email: email.into(),
        name: email.split('@').next().unwrap_or("").into(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        must_change_password: false,
        created_at: now,
        password_changed_at: now,
    }
}

fn draft(org: &Org, action: &str) -> AuditDraft {
    AuditDraft::new(&org.id, &Actor::cli(), &RequestMeta::default(), Category::Member, action, "member")
}

async fn chain_ok(store: &Arc<dyn Store>, org: &Org) -> usize {
    let rows = store.audit_chain(&org.id).await.unwrap();
    let report = audit::verify_chain(&org.id, &rows);
    assert_eq!(report.broken, None, "chain of {} broken", org.slug);
    rows.len()
}

/// An org with an Owner, created through first-run setup.
async fn setup(store: &Arc<dyn Store>) -> (Org, User) {
    let org = Org { id: new_id(), slug: "default".into(), name: "Default".into(), created_at: now_ms() };
    let owner = user("owner@example.com");
    store.bootstrap(&org, &owner, draft(&org, "setup_completed")).await.unwrap();
    (org, owner)
}

async fn add(store: &Arc<dyn Store>, org: &Org, email: &str, role: Role) -> User {
    let u = user(email);
    store.create_user(&u, &org.id, role, draft(org, "member_added")).await.unwrap();
    u
}

pub async fn users_and_setup(store: Arc<dyn Store>) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let (org, owner) = setup(&store).await;
    assert_eq!(store.count_users().await.unwrap(), 1);
    let again = Org { id: new_id(), slug: "other".into(), name: "Other".into(), created_at: now_ms() };
    let err = store.bootstrap(&again, &user("x@example.com"), draft(&again, "setup_completed")).await.unwrap_err();
    assert!(matches!(err, Error::SetupClosed), "{err:?}");
    assert!(store.org_by_slug("other").await.unwrap().is_none(), "refused setup wrote nothing");

    let found = store.user_by_email("owner@example.com").await.unwrap().unwrap();
    assert_eq!(found.id, owner.id);
    assert_eq!(store.user_by_id(&owner.id).await.unwrap().unwrap().email, "owner@example.com");
    assert!(store.user_by_email("nobody@example.com").await.unwrap().is_none());

    let dup = user("owner@example.com");
    let err = store.create_user(&dup, &org.id, Role::Member, draft(&org, "member_added")).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(chain_ok(&store, &org).await, 1, "a refused create appends no audit row");

    store.set_password(&owner.id, "$argon2id$new", true, EndSessions::None, draft(&org, "password_reset")).await.unwrap();
    let changed = store.user_by_id(&owner.id).await.unwrap().unwrap();
    assert_eq!(changed.password_hash, "$argon2id$new");
    assert!(changed.must_change_password);
    assert_eq!(chain_ok(&store, &org).await, 2);
}

pub async fn sessions(store: Arc<dyn Store>) {
    let (org, owner) = setup(&store).await;
    let now = now_ms();
    let mk = |hash: &str, expires_at: i64| Session {
        id: new_id(),
        user_id: owner.id.clone(),
        token_hash: hash.into(),
        csrf_token: "csrf".into(),
        created_at: now,
        expires_at,
        last_seen_at: now,
        ip: Some("127.0.0.1".into()),
        user_agent: None,
    };
    let a = mk("hash-a", now + 60_000);
    let b = mk("hash-b", now + 60_000);
    let old = mk("hash-old", now - 1);
    for s in [&a, &b, &old] {
        store.create_session(s, &owner.email, draft(&org, "sign_in")).await.unwrap();
    }
    let (found, u) = store.session_by_token_hash("hash-a").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), u.id.as_str()), (a.id.as_str(), owner.id.as_str()));
    assert!(store.session_by_token_hash("nope").await.unwrap().is_none());

    store.touch_session(&a.id, now + 5, now + 120_000).await.unwrap();
    let (touched, _) = store.session_by_token_hash("hash-a").await.unwrap().unwrap();
    assert_eq!((touched.last_seen_at, touched.expires_at), (now + 5, now + 120_000));

    assert_eq!(store.purge_expired(now, 0).await.unwrap(), 1);
    assert!(store.session_by_token_hash("hash-old").await.unwrap().is_none());

    store.delete_session(&a.id, draft(&org, "sign_out")).await.unwrap();
    assert!(store.session_by_token_hash("hash-a").await.unwrap().is_none());
    let c = mk("hash-c", now + 60_000);
    store.create_session(&c, &owner.email, draft(&org, "sign_in")).await.unwrap();
    store.create_session(&mk("hash-d", now + 60_000), &owner.email, draft(&org, "sign_in")).await.unwrap();
    store.set_password(&owner.id, "$argon2id$x", false, EndSessions::AllBut(c.id.clone()), draft(&org, "password_changed")).await.unwrap();
    assert!(store.session_by_token_hash("hash-c").await.unwrap().is_some(), "the changing session stays");
    assert!(store.session_by_token_hash("hash-d").await.unwrap().is_none(), "the others end");
    assert_eq!(store.delete_user_sessions(&owner.id, draft(&org, "sign_out_everywhere")).await.unwrap(), 1);
    assert!(store.session_by_token_hash("hash-b").await.unwrap().is_none());
    chain_ok(&store, &org).await;
}

pub async fn login_attempts(store: Arc<dyn Store>) {
    let (org, owner) = setup(&store).await;
    let policy = LoginPolicy { max_failures: 3, backoff_secs: vec![5, 50] };
    assert!(store.login_attempts("ghost@example.com").await.unwrap().is_none());
    // Concurrent failures all count.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (store, org, policy) = (store.clone(), org.clone(), policy.clone());
        tasks.push(tokio::spawn(async move { store.record_login_failure("ghost@example.com", 1_000, &policy, draft(&org, "sign_in_failed")).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let a = store.login_attempts("ghost@example.com").await.unwrap().unwrap();
    assert_eq!((a.failures, a.locked_until), (4, 1_000 + 50_000), "the fourth failure takes the second lock step");
    // A successful sign-in clears that address's count.
    let a = store.record_login_failure(&owner.email, 1_000, &policy, draft(&org, "sign_in_failed")).await.unwrap();
    assert_eq!((a.failures, a.locked_until), (1, 0));
    let s = Session {
        id: new_id(), user_id: owner.id.clone(), token_hash: "h".into(), csrf_token: "c".into(),
        created_at: 0, expires_at: i64::MAX, last_seen_at: 0, ip: None, user_agent: None,
    };
    store.create_session(&s, &owner.email, draft(&org, "sign_in")).await.unwrap();
    assert!(store.login_attempts(&owner.email).await.unwrap().is_none());
    assert_eq!(chain_ok(&store, &org).await, 7);
}

pub async fn api_keys(store: Arc<dyn Store>) {
    let (org, owner) = setup(&store).await;
    let dev = add(&store, &org, "dev@example.com", Role::Developer).await;
    let key = ApiKey {
        id: new_id(), user_id: dev.id.clone(), org_id: org.id.clone(), name: "ci".into(), prefix: "tale_abc".into(),
        key_hash: "keyhash".into(), created_at: now_ms(), last_used_at: None, revoked_at: None,
    };
    store.create_api_key(&key, draft(&org, "api_key_created")).await.unwrap();
    assert_eq!(store.api_keys(&dev.id, &org.id).await.unwrap().len(), 1);
    assert!(store.api_keys(&owner.id, &org.id).await.unwrap().is_empty());
    let (k, u) = store.api_key_by_hash("keyhash").await.unwrap().unwrap();
    assert_eq!((k.id.as_str(), u.id.as_str()), (key.id.as_str(), dev.id.as_str()));
    store.touch_api_key(&key.id, 42).await.unwrap();
    assert_eq!(store.api_key_by_hash("keyhash").await.unwrap().unwrap().0.last_used_at, Some(42));

    let err = store.revoke_api_key(&org.id, &owner.id, &key.id, 1, draft(&org, "api_key_revoked")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "only the key's owner revokes it: {err:?}");
    let revoked = store.revoke_api_key(&org.id, &dev.id, &key.id, 7, draft(&org, "api_key_revoked")).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(7));
    let err = store.revoke_api_key(&org.id, &dev.id, &key.id, 8, draft(&org, "api_key_revoked")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)));
    let rows = store.audit_chain(&org.id).await.unwrap();
    assert_eq!(rows.last().unwrap().resource_name.as_deref(), Some("ci"), "revocation names the key");
    chain_ok(&store, &org).await;
}

pub async fn orgs_and_members(store: Arc<dyn Store>) {
    let (org, owner) = setup(&store).await;
    let second = Org { id: new_id(), slug: "research".into(), name: "Research".into(), created_at: now_ms() + 1 };
    store.create_org(&second, &owner.id, draft(&second, "organization_created")).await.unwrap();
    let dup = Org { id: new_id(), slug: "research".into(), name: "Dup".into(), created_at: now_ms() };
    assert!(matches!(store.create_org(&dup, &owner.id, draft(&dup, "x")).await, Err(Error::Conflict(_))));

    let orgs = store.orgs_for_user(&owner.id).await.unwrap();
    let slugs: Vec<(&str, Role)> = orgs.iter().map(|(o, r)| (o.slug.as_str(), *r)).collect();
    assert_eq!(slugs, vec![("default", Role::Owner), ("research", Role::Owner)]);
    assert_eq!(store.all_orgs().await.unwrap().len(), 2);
    assert_eq!(store.org_by_id(&second.id).await.unwrap().unwrap().slug, "research");

    let ed = add(&store, &org, "ed@example.com", Role::Editor).await;
    assert_eq!(store.role_of(&org.id, &ed.id).await.unwrap(), Some(Role::Editor));
    assert_eq!(store.role_of(&second.id, &ed.id).await.unwrap(), None);
    store.add_member(&second.id, &ed.id, Role::Member, draft(&second, "member_added")).await.unwrap();
    assert!(matches!(
        store.add_member(&second.id, &ed.id, Role::Member, draft(&second, "member_added")).await,
        Err(Error::Conflict(_))
    ));
    let members = store.members(&org.id).await.unwrap();
    assert_eq!(members.iter().map(|m| m.email.as_str()).collect::<Vec<_>>(), ["owner@example.com", "ed@example.com"]);
    chain_ok(&store, &org).await;
    chain_ok(&store, &second).await;
}

pub async fn role_rules_are_atomic(store: Arc<dyn Store>) {
    let (org, owner) = setup(&store).await;
    let admin = add(&store, &org, "admin@example.com", Role::Admin).await;
    let ed = add(&store, &org, "ed@example.com", Role::Editor).await;
    let before = chain_ok(&store, &org).await;

    let demote = RoleRequest::Set { actor: Some(owner.id.clone()), target: admin.id.clone(), role: Role::Member };
    let err = store.change_roles(&org.id, &demote, draft(&org, "role_changed")).await.unwrap_err();
    assert!(matches!(err, Error::RuleViolation(_)), "{err:?}");
    assert_eq!(store.role_of(&org.id, &admin.id).await.unwrap(), Some(Role::Admin));
    assert_eq!(chain_ok(&store, &org).await, before, "a refused change appends nothing");

    let promote = RoleRequest::Set { actor: Some(owner.id.clone()), target: ed.id.clone(), role: Role::Developer };
    let c = store.change_roles(&org.id, &promote, draft(&org, "role_changed")).await.unwrap();
    assert_eq!(c.len(), 1);
    let last = store.audit_chain(&org.id).await.unwrap().pop().unwrap();
    assert_eq!(last.previous_state, Some(json!({"roles": {ed.id.clone(): "editor"}})));
    assert_eq!(last.new_state, Some(json!({"roles": {ed.id.clone(): "developer"}})));

    let transfer = RoleRequest::Transfer { actor: Some(owner.id.clone()), target: admin.id.clone() };
    store.change_roles(&org.id, &transfer, draft(&org, "ownership_transferred")).await.unwrap();
    assert_eq!(store.role_of(&org.id, &admin.id).await.unwrap(), Some(Role::Owner));
    assert_eq!(store.role_of(&org.id, &owner.id).await.unwrap(), Some(Role::Admin));
    let owners = store.members(&org.id).await.unwrap().iter().filter(|m| m.role == Role::Owner).count();
    assert_eq!(owners, 1);

    let key = ApiKey {
        id: new_id(), user_id: ed.id.clone(), org_id: org.id.clone(), name: "k".into(), prefix: "p".into(),
        key_hash: "kh".into(), created_at: 0, last_used_at: None, revoked_at: None,
    };
    store.create_api_key(&key, draft(&org, "api_key_created")).await.unwrap();
    let remove = RoleRequest::Remove { actor: Some(admin.id.clone()), target: ed.id.clone() };
    store.change_roles(&org.id, &remove, draft(&org, "member_removed")).await.unwrap();
    assert_eq!(store.role_of(&org.id, &ed.id).await.unwrap(), None);
    assert!(store.user_by_id(&ed.id).await.unwrap().is_some(), "removal keeps the account");
    assert!(store.api_key_by_hash("kh").await.unwrap().unwrap().0.revoked_at.is_some(), "removal revokes org keys");
    chain_ok(&store, &org).await;
}

pub async fn invitations(store: Arc<dyn Store>) {
    let (org, owner) = setup(&store).await;
    let now = now_ms();
    let inv = |email: &str, hash: &str, expires_at: i64| Invitation {
        id: new_id(), org_id: org.id.clone(), email: email.into(), role: Role::Editor, token_hash: hash.into(),
        invited_by: owner.id.clone(), created_at: now, expires_at, accepted_at: None, revoked_at: None,
    };
    let a = inv("new@example.com", "ha", now + 60_000);
    let b = inv("other@example.com", "hb", now + 60_000);
    let expired = inv("late@example.com", "hc", now - 1);
    for i in [&a, &b, &expired] {
        store.create_invitation(i, draft(&org, "member_invited")).await.unwrap();
    }
    assert_eq!(store.pending_invitations(&org.id, now).await.unwrap().len(), 2);
    assert_eq!(store.invitation_by_token_hash("ha").await.unwrap().unwrap().email, "new@example.com");

    let newcomer = user("new@example.com");
    store.accept_invitation(&a, &newcomer.id, Some(&newcomer), now, draft(&org, "invitation_accepted")).await.unwrap();
    assert_eq!(store.role_of(&org.id, &newcomer.id).await.unwrap(), Some(Role::Editor));
    let err = store.accept_invitation(&a, &newcomer.id, None, now, draft(&org, "invitation_accepted")).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "an invitation works once: {err:?}");

    store.revoke_invitation(&org.id, &b.id, now, draft(&org, "invitation_revoked")).await.unwrap();
    let ghost = user("other@example.com");
    let err = store.accept_invitation(&b, &ghost.id, Some(&ghost), now, draft(&org, "invitation_accepted")).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)));
    assert!(store.user_by_email("other@example.com").await.unwrap().is_none(), "refused acceptance creates no account");
    let err = store.accept_invitation(&expired, &ghost.id, Some(&ghost), now, draft(&org, "x")).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)));
    assert!(store.pending_invitations(&org.id, now).await.unwrap().is_empty());
    chain_ok(&store, &org).await;
}

pub async fn settings_are_audited_with_before_and_after(store: Arc<dyn Store>) {
    let (org, _) = setup(&store).await;
    assert_eq!(store.settings(&org.id).await.unwrap(), None);
    let first = json!({"loginPolicy": {"maxFailures": 3}});
    let second = json!({"loginPolicy": {"maxFailures": 9}});
    store.put_settings(&org.id, &first, draft(&org, "settings_updated")).await.unwrap();
    store.put_settings(&org.id, &second, draft(&org, "settings_updated")).await.unwrap();
    assert_eq!(store.settings(&org.id).await.unwrap(), Some(second.clone()));
    let last = store.audit_chain(&org.id).await.unwrap().pop().unwrap();
    assert_eq!((last.previous_state, last.new_state), (Some(first), Some(second)));
    assert_eq!(last.changed_fields, Some(vec!["loginPolicy".to_string()]));
    chain_ok(&store, &org).await;
}

pub async fn audit_chain_stays_intact_under_concurrency(store: Arc<dyn Store>) {
    let (org, _) = setup(&store).await;
    let other = Org { id: new_id(), slug: "b".into(), name: "B".into(), created_at: now_ms() };
    let owner2 = add(&store, &org, "o2@example.com", Role::Member).await;
    store.create_org(&other, &owner2.id, draft(&other, "organization_created")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let target = if i % 2 == 0 { org.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            store.append_audit(draft(&target, &format!("event_{i}"))).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = store.audit_chain(&org.id).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=rows.len() as i64).collect::<Vec<_>>(), "seq has no gaps");
    assert_eq!(chain_ok(&store, &org).await, 22);
    assert_eq!(chain_ok(&store, &other).await, 21);
    let since = store.audit_since(0, 1000).await.unwrap();
    assert_eq!(since.len(), 43);
    assert!(since.windows(2).all(|w| w[0].gid < w[1].gid));
    assert_eq!(store.audit_head_gid().await.unwrap(), since.last().unwrap().gid);
    assert_eq!(store.audit_since(since[40].gid, 10).await.unwrap().len(), 2);
}

pub async fn audit_queries_filter_and_page(store: Arc<dyn Store>) {
    let (org, _) = setup(&store).await;
    let alice = Actor { id: "u-alice".into(), email: Some("alice@example.com".into()), role: Some(Role::Admin), kind: audit::ActorType::User };
    for i in 0..5 {
        let mut d = AuditDraft::new(&org.id, &alice, &RequestMeta::default(), Category::Auth, "sign_in", "session");
        d.timestamp = 1_000 + i;
        store.append_audit(d).await.unwrap();
    }
    let q = |f: AuditFilter| {
        let store = store.clone();
        let org_id = org.id.clone();
        async move { store.audit_query(&org_id, &f).await.unwrap() }
    };
    assert_eq!(q(AuditFilter { limit: 100, ..Default::default() }).await.len(), 6);
    let auth = q(AuditFilter { category: Some(Category::Auth), limit: 100, ..Default::default() }).await;
    assert_eq!(auth.len(), 5);
    assert!(auth.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    assert_eq!(q(AuditFilter { actor: Some("ALICE@".into()), limit: 100, ..Default::default() }).await.len(), 5);
    assert_eq!(q(AuditFilter { actor: Some("u-alice".into()), limit: 100, ..Default::default() }).await.len(), 5);
    let window = q(AuditFilter { from_ms: Some(1_001), to_ms: Some(1_003), limit: 100, ..Default::default() }).await;
    assert_eq!(window.iter().map(|r| r.timestamp).collect::<Vec<_>>(), vec![1_003, 1_002, 1_001]);
    let page = q(AuditFilter { limit: 2, ..Default::default() }).await;
    let next = q(AuditFilter { limit: 2, before_seq: Some(page[1].seq), ..Default::default() }).await;
    assert_eq!(next[0].seq, page[1].seq - 1);
}
