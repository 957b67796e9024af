//! The store conformance suite: what every backend must do, checked through the traits only.
//!
//! A backend runs it with [`crate::conformance_suite!`], giving an async expression that makes a
//! fresh, empty store; each check becomes its own `#[tokio::test]`.
#![allow(clippy::unwrap_used, clippy::panic, reason = "a test suite: a failed check is a panic")]

use crate::audit::{self, Actor, AuditDraft, AuditFilter, Category, RequestMeta};
use crate::chat::{
    Artifact, ChatMessage, FileOrigin, FileRecord, MessageProgress, MessageRole, MessageStatus, Run, RunStatus, Thread,
    TokenCounts, UsageEntry, UsageGroup,
};
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
            audit_queries_filter_and_page, chat_threads_and_branches, chat_turns_progress_and_interruption,
            chat_usage_files_and_artifacts);
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

fn thread_row(org: &Org, owner: &User, title: &str, at: i64) -> Thread {
    Thread {
        id: new_id(),
        org_id: org.id.clone(),
        user_id: owner.id.clone(),
        agent_slug: "chat-agent".into(),
        title: title.into(),
        head_id: None,
        todos: json!([]),
        share_token_hash: None,
        created_at: at,
        updated_at: at,
    }
}

fn chat_message(thread: &Thread, parent: Option<&str>, role: MessageRole, text: &str, status: MessageStatus) -> ChatMessage {
    let now = now_ms();
    ChatMessage {
        id: new_id(),
        thread_id: thread.id.clone(),
        parent_id: parent.map(str::to_owned),
        role,
        content: text.into(),
        parts: Vec::new(),
        attachments: Vec::new(),
        status,
        error: None,
        run_id: None,
        model: None,
        created_at: now,
        updated_at: now,
    }
}

fn run_row(thread: &Thread, message: &ChatMessage) -> Run {
    Run {
        id: new_id(),
        org_id: thread.org_id.clone(),
        thread_id: thread.id.clone(),
        message_id: message.id.clone(),
        user_id: thread.user_id.clone(),
        agent_slug: thread.agent_slug.clone(),
        provider: Some("local".into()),
        model: Some("llama".into()),
        status: RunStatus::Running,
        created_at: now_ms(),
        finished_at: None,
        tokens: TokenCounts::default(),
        cost_cents: 0.0,
        error: None,
        log: json!({"steps": []}),
    }
}

fn chat_draft(org: &Org, action: &str) -> AuditDraft {
    AuditDraft::new(&org.id, &Actor::cli(), &RequestMeta::default(), Category::Data, action, "thread")
}

pub async fn chat_threads_and_branches(store: Arc<dyn Store>) {
    let (org, owner) = setup(&store).await;
    let other = add(&store, &org, "other@example.com", Role::Member).await;
    let now = now_ms();
    let a = thread_row(&org, &owner, "Quarterly report", now);
    let b = thread_row(&org, &owner, "Holiday plans", now + 1);
    let c = thread_row(&org, &other, "Someone else's report", now + 2);
    for t in [&a, &b, &c] {
        store.create_thread(t, chat_draft(&org, "thread_created")).await.unwrap();
    }
    let mine: Vec<String> = store.threads(&org.id, &owner.id, None, 50).await.unwrap().into_iter().map(|t| t.title).collect();
    assert_eq!(mine, ["Holiday plans", "Quarterly report"], "own threads only, newest first");
    let found = store.threads(&org.id, &owner.id, Some("REPORT"), 50).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, a.id);
    assert!(store.threads(&org.id, &owner.id, Some("%"), 50).await.unwrap().is_empty(), "no wildcards");

    store.rename_thread(&a.id, "Q3 report", now + 5, chat_draft(&org, "thread_renamed")).await.unwrap();
    assert_eq!(store.thread(&a.id).await.unwrap().unwrap().title, "Q3 report");
    let err = store.rename_thread("missing", "x", now, chat_draft(&org, "thread_renamed")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    store.set_thread_share(&a.id, Some("share-hash"), now + 6, chat_draft(&org, "thread_shared")).await.unwrap();
    assert_eq!(store.thread_by_share_hash("share-hash").await.unwrap().unwrap().id, a.id);
    store.set_thread_share(&a.id, None, now + 7, chat_draft(&org, "thread_unshared")).await.unwrap();
    assert!(store.thread_by_share_hash("share-hash").await.unwrap().is_none());

    // A question, an answer, then a regenerated answer: both answers stay, the head moves.
    let q = chat_message(&a, None, MessageRole::User, "What changed?", MessageStatus::Complete);
    let first = chat_message(&a, Some(&q.id), MessageRole::Assistant, "Revenue.", MessageStatus::Complete);
    store.start_turn(&[q.clone(), first.clone()], &run_row(&a, &first), &first.id).await.unwrap();
    let second = chat_message(&a, Some(&q.id), MessageRole::Assistant, "Costs.", MessageStatus::Complete);
    store.start_turn(std::slice::from_ref(&second), &run_row(&a, &second), &second.id).await.unwrap();
    let all = store.messages(&a.id).await.unwrap();
    assert_eq!(all.len(), 3);
    let head = store.thread(&a.id).await.unwrap().unwrap().head_id;
    assert_eq!(head.as_deref(), Some(second.id.as_str()));
    let path: Vec<&str> = crate::chat::branch(&all, head.as_deref()).iter().map(|m| m.content.as_str()).collect();
    assert_eq!(path, ["What changed?", "Costs."]);
    store.set_thread_head(&a.id, &first.id, now + 9).await.unwrap();
    assert_eq!(store.thread(&a.id).await.unwrap().unwrap().head_id.as_deref(), Some(first.id.as_str()));
    store.set_thread_todos(&a.id, &json!([{"id": "1", "text": "check", "status": "done"}]), now + 10).await.unwrap();
    assert_eq!(store.thread(&a.id).await.unwrap().unwrap().todos[0]["status"], "done");

    let audited = chain_ok(&store, &org).await;
    store.delete_thread(&a.id, chat_draft(&org, "thread_deleted")).await.unwrap();
    assert!(store.thread(&a.id).await.unwrap().is_none());
    assert!(store.messages(&a.id).await.unwrap().is_empty(), "messages go with the thread");
    assert!(store.message(&q.id).await.unwrap().is_none());
    assert_eq!(chain_ok(&store, &org).await, audited + 1);
}

pub async fn chat_turns_progress_and_interruption(store: Arc<dyn Store>) {
    let (org, owner) = setup(&store).await;
    let t = thread_row(&org, &owner, "Streaming", now_ms());
    store.create_thread(&t, chat_draft(&org, "thread_created")).await.unwrap();
    let q = chat_message(&t, None, MessageRole::User, "Tell me a story", MessageStatus::Complete);
    let mut answer = chat_message(&t, Some(&q.id), MessageRole::Assistant, "", MessageStatus::Streaming);
    let mut run = run_row(&t, &answer);
    answer.run_id = Some(run.id.clone());
    store.start_turn(&[q.clone(), answer.clone()], &run, &answer.id).await.unwrap();

    let progress = |text: &str| MessageProgress { id: answer.id.clone(), content: text.into(), parts: vec![json!({"type": "tool"})], updated_at: now_ms() };
    store.save_progress(&[progress("Once upon")]).await.unwrap();
    let saved = store.message(&answer.id).await.unwrap().unwrap();
    assert_eq!((saved.content.as_str(), saved.parts.len()), ("Once upon", 1));

    answer.content = "Once upon a time.".into();
    answer.status = MessageStatus::Complete;
    run.status = RunStatus::Completed;
    run.tokens = TokenCounts { input: 10, output: 5, cached_input: 2, reasoning: 1 };
    run.cost_cents = 0.25;
    run.finished_at = Some(now_ms());
    let usage = UsageEntry {
        id: new_id(),
        org_id: org.id.clone(),
        user_id: owner.id.clone(),
        agent_slug: Some("chat-agent".into()),
        provider: "local".into(),
        model: "llama".into(),
        run_id: Some(run.id.clone()),
        tokens: run.tokens,
        cost_cents: 0.25,
        at: now_ms(),
    };
    store.finish_turn(&answer, &run, std::slice::from_ref(&usage)).await.unwrap();
    // A progress batch that arrives after the end does not roll the answer back.
    store.save_progress(&[progress("Once")]).await.unwrap();
    let done = store.message(&answer.id).await.unwrap().unwrap();
    assert_eq!((done.content.as_str(), done.status), ("Once upon a time.", MessageStatus::Complete));
    let stored = store.run(&run.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.tokens, stored.cost_cents), (RunStatus::Completed, run.tokens, 0.25));
    assert_eq!(stored.log, json!({"steps": []}));
    assert_eq!(store.thread_runs(&t.id).await.unwrap().len(), 1);
    assert_eq!(store.recent_runs(&org.id, 10).await.unwrap()[0].id, run.id);

    // A second answer is streaming when the server dies.
    let q2 = chat_message(&t, Some(&answer.id), MessageRole::User, "Another", MessageStatus::Complete);
    let a2 = chat_message(&t, Some(&q2.id), MessageRole::Assistant, "Half an ans", MessageStatus::Streaming);
    let r2 = run_row(&t, &a2);
    store.start_turn(&[q2, a2.clone()], &r2, &a2.id).await.unwrap();
    assert_eq!(store.mark_interrupted(now_ms()).await.unwrap(), 1);
    let cut = store.message(&a2.id).await.unwrap().unwrap();
    assert_eq!((cut.status, cut.content.as_str()), (MessageStatus::Interrupted, "Half an ans"), "kept what was saved");
    assert!(cut.error.is_some());
    assert_eq!(store.run(&r2.id).await.unwrap().unwrap().status, RunStatus::Interrupted);
    assert_eq!(store.run(&run.id).await.unwrap().unwrap().status, RunStatus::Completed, "finished runs untouched");
    assert_eq!(store.mark_interrupted(now_ms()).await.unwrap(), 0);
}

pub async fn chat_usage_files_and_artifacts(store: Arc<dyn Store>) {
    let (org, owner) = setup(&store).await;
    let now = now_ms();
    let entry = |agent: Option<&str>, model: &str, cost: f64, at: i64| UsageEntry {
        id: new_id(),
        org_id: org.id.clone(),
        user_id: owner.id.clone(),
        agent_slug: agent.map(str::to_owned),
        provider: "p".into(),
        model: model.into(),
        run_id: None,
        tokens: TokenCounts { input: 100, output: 10, cached_input: 0, reasoning: 0 },
        cost_cents: cost,
        at,
    };
    store.record_usage(&entry(Some("chat-agent"), "big", 2.0, now)).await.unwrap();
    store.record_usage(&entry(Some("chat-agent"), "small", 0.5, now)).await.unwrap();
    store.record_usage(&entry(None, "big", 1.0, now)).await.unwrap();
    store.record_usage(&entry(None, "big", 9.0, now - 100_000)).await.unwrap();
    let by_agent = store.usage_totals(&org.id, now - 1000, UsageGroup::Agent).await.unwrap();
    assert_eq!(by_agent.iter().map(|t| (t.key.as_str(), t.calls)).collect::<Vec<_>>(), [("chat-agent", 2), ("api", 1)]);
    assert_eq!(by_agent[0].tokens.input, 200);
    assert!((by_agent[0].cost_cents - 2.5).abs() < 1e-9);
    let by_model = store.usage_totals(&org.id, now - 1000, UsageGroup::Model).await.unwrap();
    assert_eq!(by_model[0].key, "p:big");
    let by_user = store.usage_totals(&org.id, 0, UsageGroup::User).await.unwrap();
    assert_eq!((by_user.len(), by_user[0].calls), (1, 4));

    let t = thread_row(&org, &owner, "Files", now);
    store.create_thread(&t, chat_draft(&org, "thread_created")).await.unwrap();
    let upload = FileRecord {
        id: new_id(),
        org_id: org.id.clone(),
        user_id: owner.id.clone(),
        thread_id: None,
        name: "notes.txt".into(),
        media_type: "text/plain".into(),
        size: 5,
        sha256: "ab".repeat(32),
        origin: FileOrigin::Upload,
        created_at: now,
    };
    store.put_file(&upload).await.unwrap();
    let mut q = chat_message(&t, None, MessageRole::User, "see file", MessageStatus::Complete);
    q.attachments.push(upload.as_ref());
    let a = chat_message(&t, Some(&q.id), MessageRole::Assistant, "", MessageStatus::Streaming);
    store.start_turn(&[q.clone(), a.clone()], &run_row(&t, &a), &a.id).await.unwrap();
    assert_eq!(store.file(&upload.id).await.unwrap().unwrap().thread_id.as_deref(), Some(t.id.as_str()), "sent uploads join the thread");
    assert_eq!(store.message(&q.id).await.unwrap().unwrap().attachments, vec![upload.as_ref()]);

    let v1 = Artifact {
        id: new_id(),
        version: 1,
        org_id: org.id.clone(),
        thread_id: t.id.clone(),
        kind: "markdown".into(),
        title: "Plan".into(),
        language: None,
        content: "# Plan".into(),
        created_at: now,
    };
    store.put_artifact(&v1).await.unwrap();
    let v2 = Artifact { version: 2, content: "# Plan v2".into(), ..v1.clone() };
    store.put_artifact(&v2).await.unwrap();
    assert!(matches!(store.put_artifact(&v2).await.unwrap_err(), Error::Conflict(_)), "versions are never overwritten");
    assert_eq!(store.artifact(&v1.id, None).await.unwrap().unwrap(), v2);
    assert_eq!(store.artifact(&v1.id, Some(1)).await.unwrap().unwrap(), v1);

    store.delete_thread(&t.id, chat_draft(&org, "thread_deleted")).await.unwrap();
    assert!(store.file(&upload.id).await.unwrap().is_none(), "uploads go with the thread");
    assert!(store.artifact(&v1.id, None).await.unwrap().is_none());
    assert_eq!(store.usage_totals(&org.id, 0, UsageGroup::User).await.unwrap()[0].calls, 4, "the ledger stays");
}
