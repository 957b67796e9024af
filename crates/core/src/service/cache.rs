//! A short-lived cache of who a credential is and what role they hold where, so an authenticated
//! request does not read the store just to identify its caller.
//!
//! Correctness rests on invalidation, not on the TTL: every committed change clears the cache
//! before the mutating call returns (in this process) or when the change feed sees the commit
//! (another process on the same data dir, within the feed's poll interval). The TTL only bounds
//! the life of entries nobody changed.

use crate::audit::AuditRecord;
use crate::model::{ApiKey, Member, Org};
use crate::role::Role;
use crate::service::Principal;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 50_000;

struct Map<K, V> {
    /// Value, when stored, and the generation it was read at.
    entries: RwLock<HashMap<K, (V, Instant, u64)>>,
    max: usize,
}

impl<K: Eq + Hash, V: Clone> Map<K, V> {
    fn new() -> Self {
        Self::bounded(MAX_ENTRIES)
    }

    fn bounded(max: usize) -> Self {
        Map { entries: RwLock::new(HashMap::new()), max }
    }

    /// Only entries read at the current generation count: one inserted after a concurrent clear
    /// from data read before it is ignored.
    fn get(&self, key: &K, generation: u64) -> Option<V> {
        let map = self.entries.read().ok()?;
        map.get(key).filter(|(_, at, g)| *g == generation && at.elapsed() < TTL).map(|(v, _, _)| v.clone())
    }

    fn put(&self, key: K, value: V, generation: u64) {
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= self.max {
                map.clear();
            }
            map.insert(key, (value, Instant::now(), generation));
        }
    }

    fn clear(&self) {
        if let Ok(mut map) = self.entries.write() {
            map.clear();
        }
    }
}

/// Entries are stored with the generation read *before* the store was read; a clear in between
/// bumps the generation and the stale value is dropped instead of cached.
pub(crate) struct AuthCache {
    generation: AtomicU64,
    /// Credential hash → caller, with the instant the credential stops being valid (epoch ms).
    principals: Map<String, (Principal, i64)>,
    orgs: Map<String, Org>,
    roles: Map<(String, String), Option<Role>>,
    memberships: Map<String, Vec<(Org, Role)>>,
    /// Read-through copies of hot reads; the same invalidation keeps them current.
    members: Map<String, Vec<Member>>,
    settings: Map<String, Option<serde_json::Value>>,
    api_keys: Map<(String, String), Vec<ApiKey>>,
    /// Audit pages by organisation and filter; few, because pages are large.
    audit_pages: Map<String, Vec<AuditRecord>>,
}

impl AuthCache {
    pub(crate) fn new() -> Self {
        AuthCache {
            generation: AtomicU64::new(0),
            principals: Map::new(),
            orgs: Map::new(),
            roles: Map::new(),
            memberships: Map::new(),
            members: Map::new(),
            settings: Map::new(),
            api_keys: Map::new(),
            audit_pages: Map::bounded(64),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn fresh(&self, generation: u64) -> bool {
        self.generation() == generation
    }

    pub(crate) fn memberships(&self, user_id: &str) -> Option<Vec<(Org, Role)>> {
        self.memberships.get(&user_id.to_owned(), self.generation())
    }

    pub(crate) fn put_memberships(&self, generation: u64, user_id: &str, list: &[(Org, Role)]) {
        if self.fresh(generation) {
            self.memberships.put(user_id.to_owned(), list.to_vec(), generation);
        }
    }

    pub(crate) fn principal(&self, credential_hash: &str, now_ms: i64) -> Option<Principal> {
        self.principals.get(&credential_hash.to_owned(), self.generation()).filter(|(_, until)| *until > now_ms).map(|(p, _)| p)
    }

    pub(crate) fn put_principal(&self, generation: u64, credential_hash: &str, principal: &Principal, valid_until_ms: i64) {
        if self.fresh(generation) {
            self.principals.put(credential_hash.to_owned(), (principal.clone(), valid_until_ms), generation);
        }
    }

    pub(crate) fn org(&self, slug: &str) -> Option<Org> {
        self.orgs.get(&slug.to_owned(), self.generation())
    }

    pub(crate) fn put_org(&self, generation: u64, org: &Org) {
        if self.fresh(generation) {
            self.orgs.put(org.slug.clone(), org.clone(), generation);
        }
    }

    pub(crate) fn role(&self, org_id: &str, user_id: &str) -> Option<Option<Role>> {
        self.roles.get(&(org_id.to_owned(), user_id.to_owned()), self.generation())
    }

    pub(crate) fn put_role(&self, generation: u64, org_id: &str, user_id: &str, role: Option<Role>) {
        if self.fresh(generation) {
            self.roles.put((org_id.to_owned(), user_id.to_owned()), role, generation);
        }
    }

    pub(crate) fn members(&self, org_id: &str) -> Option<Vec<Member>> {
        self.members.get(&org_id.to_owned(), self.generation())
    }

    pub(crate) fn put_members(&self, generation: u64, org_id: &str, list: &[Member]) {
        if self.fresh(generation) {
            self.members.put(org_id.to_owned(), list.to_vec(), generation);
        }
    }

    pub(crate) fn settings(&self, org_id: &str) -> Option<Option<serde_json::Value>> {
        self.settings.get(&org_id.to_owned(), self.generation())
    }

    pub(crate) fn put_settings(&self, generation: u64, org_id: &str, value: &Option<serde_json::Value>) {
        if self.fresh(generation) {
            self.settings.put(org_id.to_owned(), value.clone(), generation);
        }
    }

    pub(crate) fn api_keys(&self, user_id: &str, org_id: &str) -> Option<Vec<ApiKey>> {
        self.api_keys.get(&(user_id.to_owned(), org_id.to_owned()), self.generation())
    }

    pub(crate) fn put_api_keys(&self, generation: u64, user_id: &str, org_id: &str, list: &[ApiKey]) {
        if self.fresh(generation) {
            self.api_keys.put((user_id.to_owned(), org_id.to_owned()), list.to_vec(), generation);
        }
    }

    pub(crate) fn audit_page(&self, key: &str) -> Option<Vec<AuditRecord>> {
        self.audit_pages.get(&key.to_owned(), self.generation())
    }

    pub(crate) fn put_audit_page(&self, generation: u64, key: &str, rows: &[AuditRecord]) {
        if self.fresh(generation) {
            self.audit_pages.put(key.to_owned(), rows.to_vec(), generation);
        }
    }

    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.api_keys.clear();
        self.audit_pages.clear();
        self.members.clear();
        self.settings.clear();
        self.memberships.clear();
        self.principals.clear();
        self.orgs.clear();
        self.roles.clear();
    }
}
