//! The storage traits, one per bounded context. Backends (SQLite now, PostgreSQL later) implement
//! all of them and must pass the shared conformance suite (`conformance`, feature-gated).
//!
//! Contract for every mutating method: it applies the change and appends the given audit draft to
//! that organisation's hash chain in one transaction, or does neither.

use crate::audit::{AuditDraft, AuditFilter, AuditRecord};
use crate::chat::{Artifact, ChatMessage, FileRecord, MessageProgress, Run, Thread, UsageEntry, UsageGroup, UsageTotal};
use crate::model::{ApiKey, Invitation, LoginAttempts, Member, Org, Session, User};
use crate::role::Role;
use crate::rules::{Assignment, RoleRequest};
use crate::settings::LoginPolicy;
use crate::Result;

/// Which sessions a password change ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndSessions {
    None,
    All,
    /// Every session but the one making the change.
    AllBut(String),
}
use async_trait::async_trait;
use serde_json::Value;

/// Users, sessions, sign-in attempts and personal API keys.
#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn count_users(&self) -> Result<u64>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn user_by_id(&self, id: &str) -> Result<Option<User>>;
    /// Creates a user and their first membership. `Conflict` if the e-mail is taken.
    async fn create_user(&self, user: &User, org_id: &str, role: Role, audit: AuditDraft) -> Result<()>;
    /// Replaces the password hash and ends the user's sessions as `end` says.
    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        must_change: bool,
        end: EndSessions,
        audit: AuditDraft,
    ) -> Result<()>;

    async fn login_attempts(&self, email_key: &str) -> Result<Option<LoginAttempts>>;
    /// Counts one more failure for the address atomically (concurrent failures all count),
    /// locks it as `policy` says, audits the failure, and returns the new state.
    async fn record_login_failure(&self, email_key: &str, now: i64, policy: &LoginPolicy, audit: AuditDraft) -> Result<LoginAttempts>;

    /// Starts a session, clears the e-mail's failure count, audits the sign-in.
    async fn create_session(&self, session: &Session, email_key: &str, audit: AuditDraft) -> Result<()>;
    async fn session_by_token_hash(&self, token_hash: &str) -> Result<Option<(Session, User)>>;
    async fn touch_session(&self, session_id: &str, last_seen_at: i64, expires_at: i64) -> Result<()>;
    async fn delete_session(&self, session_id: &str, audit: AuditDraft) -> Result<()>;
    /// Ends every session of a user; returns how many ended.
    async fn delete_user_sessions(&self, user_id: &str, audit: AuditDraft) -> Result<u64>;
    /// Removes expired sessions and stale sign-in attempts (housekeeping, not audited).
    async fn purge_expired(&self, now: i64, attempts_older_than: i64) -> Result<u64>;

    async fn create_api_key(&self, key: &ApiKey, audit: AuditDraft) -> Result<()>;
    async fn api_keys(&self, user_id: &str, org_id: &str) -> Result<Vec<ApiKey>>;
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<(ApiKey, User)>>;
    /// Revokes one of `user_id`'s keys in `org_id`. `NotFound` if there is no such live key.
    async fn revoke_api_key(&self, org_id: &str, user_id: &str, key_id: &str, at: i64, audit: AuditDraft)
        -> Result<ApiKey>;
    async fn touch_api_key(&self, key_id: &str, at: i64) -> Result<()>;
}

/// Organisations, memberships and roles, invitations and per-organisation settings.
#[async_trait]
pub trait OrgStore: Send + Sync {
    /// First-run setup: the `default` org, its Owner and the membership, only while no user exists.
    /// `SetupClosed` otherwise.
    async fn bootstrap(&self, org: &Org, owner: &User, audit: AuditDraft) -> Result<()>;
    /// A further organisation with `owner_id` as its Owner. `Conflict` if the slug is taken.
    async fn create_org(&self, org: &Org, owner_id: &str, audit: AuditDraft) -> Result<()>;
    async fn org_by_slug(&self, slug: &str) -> Result<Option<Org>>;
    async fn org_by_id(&self, id: &str) -> Result<Option<Org>>;
    async fn all_orgs(&self) -> Result<Vec<Org>>;
    /// The organisations a user belongs to, with their role, in creation order.
    async fn orgs_for_user(&self, user_id: &str) -> Result<Vec<(Org, Role)>>;
    async fn role_of(&self, org_id: &str, user_id: &str) -> Result<Option<Role>>;
    async fn members(&self, org_id: &str) -> Result<Vec<Member>>;
    /// Attaches an existing account. `Conflict` if already a member.
    async fn add_member(&self, org_id: &str, user_id: &str, role: Role, audit: AuditDraft) -> Result<()>;
    /// Runs [`crate::rules::plan`] on the current roles and applies the result atomically; the
    /// audit draft gets the before/after roles. An empty plan writes nothing.
    async fn change_roles(&self, org_id: &str, request: &RoleRequest, audit: AuditDraft) -> Result<Vec<Assignment>>;

    async fn create_invitation(&self, invitation: &Invitation, audit: AuditDraft) -> Result<()>;
    async fn pending_invitations(&self, org_id: &str, now: i64) -> Result<Vec<Invitation>>;
    async fn invitation_by_token_hash(&self, token_hash: &str) -> Result<Option<Invitation>>;
    async fn revoke_invitation(&self, org_id: &str, id: &str, at: i64, audit: AuditDraft) -> Result<Invitation>;
    /// Marks the invitation used and adds the membership; creates `new_user` first when given.
    /// `Conflict` if it was used or revoked meanwhile, or the account is already a member.
    async fn accept_invitation(
        &self,
        invitation: &Invitation,
        user_id: &str,
        new_user: Option<&User>,
        at: i64,
        audit: AuditDraft,
    ) -> Result<()>;

    async fn settings(&self, org_id: &str) -> Result<Option<Value>>;
    /// Replaces the settings document; the audit draft gets the previous and new documents.
    async fn put_settings(&self, org_id: &str, settings: &Value, audit: AuditDraft) -> Result<()>;
}

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry that accompanies no other change (e.g. a failed sign-in).
    async fn append_audit(&self, audit: AuditDraft) -> Result<AuditRecord>;
    /// Newest first, filtered.
    async fn audit_query(&self, org_id: &str, filter: &AuditFilter) -> Result<Vec<AuditRecord>>;
    /// Every row of one organisation in chain order (oldest first).
    async fn audit_chain(&self, org_id: &str) -> Result<Vec<AuditRecord>>;
    /// Rows of every organisation committed after global position `gid`, oldest first.
    async fn audit_since(&self, gid: i64, limit: u32) -> Result<Vec<AuditRecord>>;
    async fn audit_head_gid(&self) -> Result<i64>;
}

/// Threads, messages, runs, the usage ledger, files and artifacts.
#[async_trait]
pub trait ChatStore: Send + Sync {
    async fn create_thread(&self, thread: &Thread, audit: AuditDraft) -> Result<()>;
    async fn thread(&self, id: &str) -> Result<Option<Thread>>;
    async fn thread_by_share_hash(&self, token_hash: &str) -> Result<Option<Thread>>;
    /// One user's threads in one organisation, most recently active first; `title_query`
    /// keeps those whose title contains it (case-insensitive).
    async fn threads(&self, org_id: &str, user_id: &str, title_query: Option<&str>, limit: u32) -> Result<Vec<Thread>>;
    async fn rename_thread(&self, id: &str, title: &str, at: i64, audit: AuditDraft) -> Result<()>;
    /// Shares (`Some(hash)`) or unshares the thread read-only.
    async fn set_thread_share(&self, id: &str, token_hash: Option<&str>, at: i64, audit: AuditDraft) -> Result<()>;
    async fn set_thread_head(&self, id: &str, head_id: &str, at: i64) -> Result<()>;
    async fn set_thread_todos(&self, id: &str, todos: &Value, at: i64) -> Result<()>;
    /// Deletes the thread with its messages, runs' logs, artifacts and file records. The usage
    /// ledger keeps its rows.
    async fn delete_thread(&self, id: &str, audit: AuditDraft) -> Result<()>;

    /// Writes (inserts or replaces) the turn's messages and its run and moves the thread's head,
    /// in one transaction.
    async fn start_turn(&self, messages: &[ChatMessage], run: &Run, head_id: &str) -> Result<()>;
    /// Every message of a thread (all branches), oldest first.
    async fn messages(&self, thread_id: &str) -> Result<Vec<ChatMessage>>;
    async fn message(&self, id: &str) -> Result<Option<ChatMessage>>;
    /// Streaming answers' text so far, many at once in one transaction.
    async fn save_progress(&self, updates: &[MessageProgress]) -> Result<()>;
    /// The answer's final state, its run and its usage rows, in one transaction.
    async fn finish_turn(&self, message: &ChatMessage, run: &Run, usage: &[UsageEntry]) -> Result<()>;
    async fn run(&self, id: &str) -> Result<Option<Run>>;
    async fn thread_runs(&self, thread_id: &str) -> Result<Vec<Run>>;
    /// The newest runs of an organisation.
    async fn recent_runs(&self, org_id: &str, limit: u32) -> Result<Vec<Run>>;
    /// After a crash or restart: answers still streaming and runs still running are marked
    /// interrupted. Returns how many answers were.
    async fn mark_interrupted(&self, at: i64) -> Result<u64>;
    async fn record_usage(&self, entry: &UsageEntry) -> Result<()>;
    /// Usage since `since` (epoch ms) summed by user, agent or model, largest cost first.
    async fn usage_totals(&self, org_id: &str, since: i64, by: UsageGroup) -> Result<Vec<UsageTotal>>;

    async fn put_file(&self, file: &FileRecord) -> Result<()>;
    async fn file(&self, id: &str) -> Result<Option<FileRecord>>;
    /// Adds a version of an artifact (`version` 1 creates it).
    async fn put_artifact(&self, artifact: &Artifact) -> Result<()>;
    /// The given version, or the newest.
    async fn artifact(&self, id: &str, version: Option<i64>) -> Result<Option<Artifact>>;
}

/// Everything a backend provides.
#[async_trait]
pub trait Store: AccountStore + OrgStore + AuditStore + ChatStore {
    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> Result<()>;
}
