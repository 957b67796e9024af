//! The audit log's records and its SHA-256 hash chain (TALE-COMPAT §8).
//!
//! `integrityHash = hex(SHA-256(previousHash + canonical(record)))`, one chain per organisation,
//! the first row chained to `""`. `canonical` is JSON with keys sorted at every level and absent
//! values left out. Each row names its successor, so removing the newest row is detected too.

use crate::role::Role;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::str::FromStr;

macro_rules! string_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    Error::invalid(format!(concat!("unknown ", stringify!($name), " '{}'"), s))
                })
            }
        }
    };
}

pub(crate) use string_enum;

string_enum!(Category {
    Auth => "auth", Member => "member", Data => "data", Integration => "integration",
    Workflow => "workflow", Security => "security", Admin => "admin", Ai => "ai",
});
string_enum!(ActorType { User => "user", System => "system", Api => "api", Workflow => "workflow" });
string_enum!(Status { Success => "success", Failure => "failure", Denied => "denied" });

/// Who did something, as the audit log records it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: String,
    pub email: Option<String>,
    pub role: Option<Role>,
    pub kind: ActorType,
}

impl Actor {
    /// The operator at the command line (`tale admin ...`).
    pub fn cli() -> Self {
        Actor { id: "cli".into(), email: None, role: None, kind: ActorType::System }
    }
    pub fn anonymous() -> Self {
        Actor { id: "anonymous".into(), email: None, role: None, kind: ActorType::User }
    }
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub session_id: Option<String>,
}

/// An audit entry before the store seals it into the chain.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub org_id: String,
    pub actor: Actor,
    pub category: Category,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub resource_name: Option<String>,
    pub previous_state: Option<Value>,
    pub new_state: Option<Value>,
    pub status: Status,
    pub error_message: Option<String>,
    pub metadata: Option<Value>,
    pub meta: RequestMeta,
    pub timestamp: i64,
}

impl AuditDraft {
    pub fn new(
        org_id: &str,
        actor: &Actor,
        meta: &RequestMeta,
        category: Category,
        action: &str,
        resource_type: &str,
    ) -> Self {
        AuditDraft {
            org_id: org_id.to_owned(),
            actor: actor.clone(),
            category,
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id: None,
            resource_name: None,
            previous_state: None,
            new_state: None,
            status: Status::Success,
            error_message: None,
            metadata: None,
            meta: meta.clone(),
            timestamp: crate::id::now_ms(),
        }
    }
    pub fn resource(mut self, id: &str, name: &str) -> Self {
        self.resource_id = Some(id.to_owned());
        self.resource_name = Some(name.to_owned());
        self
    }
    pub fn states(mut self, before: Option<Value>, after: Option<Value>) -> Self {
        self.previous_state = before;
        self.new_state = after;
        self
    }
    pub fn failed(mut self, status: Status, message: &str) -> Self {
        self.status = status;
        self.error_message = Some(message.to_owned());
        self
    }
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// A sealed row of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub id: String,
    /// Global insertion order across organisations (drives live updates; not hashed).
    pub gid: i64,
    /// Position in this organisation's chain, from 1 (not hashed; the links carry order).
    pub seq: i64,
    pub organization_id: String,
    pub actor_id: String,
    pub actor_email: Option<String>,
    pub actor_role: Option<String>,
    pub actor_type: ActorType,
    pub action: String,
    pub category: Category,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub resource_name: Option<String>,
    pub previous_state: Option<Value>,
    pub new_state: Option<Value>,
    pub changed_fields: Option<Vec<String>>,
    pub session_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub timestamp: i64,
    pub status: Status,
    pub error_message: Option<String>,
    pub metadata: Option<Value>,
    pub integrity_hash: String,
    pub previous_hash: String,
    pub chain_successor: Option<String>,
}

/// Top-level keys that differ between two JSON objects, sorted.
fn changed_fields(before: Option<&Value>, after: Option<&Value>) -> Option<Vec<String>> {
    let (Some(Value::Object(b)), Some(Value::Object(a))) = (before, after) else {
        return None;
    };
    let mut keys: Vec<String> = b
        .keys()
        .chain(a.keys())
        .filter(|k| b.get(*k) != a.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    Some(keys)
}

/// Turns a draft into the next row of its organisation's chain.
pub fn seal(draft: AuditDraft, id: String, gid: i64, seq: i64, previous_hash: &str) -> AuditRecord {
    let changed = changed_fields(draft.previous_state.as_ref(), draft.new_state.as_ref());
    let mut record = AuditRecord {
        id,
        gid,
        seq,
        organization_id: draft.org_id,
        actor_id: draft.actor.id,
        actor_email: draft.actor.email,
        actor_role: draft.actor.role.map(|r| r.as_str().to_owned()),
        actor_type: draft.actor.kind,
        action: draft.action,
        category: draft.category,
        resource_type: draft.resource_type,
        resource_id: draft.resource_id,
        resource_name: draft.resource_name,
        previous_state: draft.previous_state,
        new_state: draft.new_state,
        changed_fields: changed,
        session_id: draft.meta.session_id,
        ip_address: draft.meta.ip,
        user_agent: draft.meta.user_agent,
        request_id: draft.meta.request_id,
        timestamp: draft.timestamp,
        status: draft.status,
        error_message: draft.error_message,
        metadata: draft.metadata,
        integrity_hash: String::new(),
        previous_hash: previous_hash.to_owned(),
        chain_successor: None,
    };
    record.integrity_hash = integrity_hash(&record);
    record
}

/// The hash a row must carry, computed from its content and `previous_hash`.
pub fn integrity_hash(record: &AuditRecord) -> String {
    let mut hasher = Sha256::new();
    hasher.update(record.previous_hash.as_bytes());
    hasher.update(canonical_record(record).as_bytes());
    hex::encode(hasher.finalize())
}

/// The hashed view of a row: every field but the chain bookkeeping and storage positions.
fn canonical_record(r: &AuditRecord) -> String {
    let mut map = serde_json::Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            map.insert(k.to_owned(), v);
        }
    };
    let s = |v: &Option<String>| v.clone().map(Value::String);
    put("organizationId", Some(Value::String(r.organization_id.clone())));
    put("actorId", Some(Value::String(r.actor_id.clone())));
    put("actorEmail", s(&r.actor_email));
    put("actorRole", s(&r.actor_role));
    put("actorType", Some(Value::String(r.actor_type.as_str().into())));
    put("action", Some(Value::String(r.action.clone())));
    put("category", Some(Value::String(r.category.as_str().into())));
    put("resourceType", Some(Value::String(r.resource_type.clone())));
    put("resourceId", s(&r.resource_id));
    put("resourceName", s(&r.resource_name));
    put("previousState", r.previous_state.clone());
    put("newState", r.new_state.clone());
    put(
        "changedFields",
        r.changed_fields.as_ref().map(|f| Value::Array(f.iter().cloned().map(Value::String).collect())),
    );
    put("sessionId", s(&r.session_id));
    put("ipAddress", s(&r.ip_address));
    put("userAgent", s(&r.user_agent));
    put("requestId", s(&r.request_id));
    put("timestamp", Some(Value::from(r.timestamp)));
    put("status", Some(Value::String(r.status.as_str().into())));
    put("errorMessage", s(&r.error_message));
    put("metadata", r.metadata.clone());
    let mut out = String::new();
    write_canonical(&Value::Object(map), &mut out);
    out
}

/// JSON with object keys sorted at every level, independent of serde_json's map ordering.
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}", Value::String((*k).clone()));
                out.push(':');
                if let Some(v) = map.get(*k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// The first place a chain stops being intact.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokenLink {
    pub organization_id: String,
    pub seq: i64,
    pub id: String,
    pub reason: String,
}

/// The result of checking one organisation's chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    pub organization_id: String,
    pub rows: usize,
    pub broken: Option<BrokenLink>,
}

/// Walks one organisation's rows in chain order and reports the first broken link.
pub fn verify_chain(org_id: &str, rows: &[AuditRecord]) -> ChainReport {
    let broken = |r: &AuditRecord, reason: &str| BrokenLink {
        organization_id: org_id.to_owned(),
        seq: r.seq,
        id: r.id.clone(),
        reason: reason.to_owned(),
    };
    let mut expected_previous = String::new();
    for (i, row) in rows.iter().enumerate() {
        let report = |b| ChainReport { organization_id: org_id.to_owned(), rows: rows.len(), broken: Some(b) };
        if row.previous_hash != expected_previous {
            return report(broken(row, "previous hash does not match the row before it: a row was removed, inserted or reordered"));
        }
        if integrity_hash(row) != row.integrity_hash {
            return report(broken(row, "content does not match its integrity hash: the row was edited"));
        }
        match (rows.get(i + 1), &row.chain_successor) {
            (Some(next), Some(succ)) if *succ == next.id => {}
            (None, None) => {}
            (None, Some(_)) => {
                return report(broken(row, "the row names a successor that is missing: the newest rows were removed"));
            }
            _ => return report(broken(row, "successor link does not match the next row")),
        }
        expected_previous = row.integrity_hash.clone();
    }
    ChainReport { organization_id: org_id.to_owned(), rows: rows.len(), broken: None }
}

/// Filters for reading the log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub category: Option<Category>,
    /// Matches the actor's id or e-mail (substring, case-insensitive).
    pub actor: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only rows with `seq` below this (for paging backwards).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// CSV export, columns as in the reference.
pub fn to_csv(rows: &[AuditRecord]) -> String {
    const HEADER: &str = "timestamp,action,category,actorEmail,actorId,actorType,actorRole,resourceType,resourceId,resourceName,status,errorMessage";
    let mut out = String::from(HEADER);
    out.push('\n');
    for r in rows {
        let fields = [
            crate::id::iso8601(r.timestamp),
            r.action.clone(),
            r.category.as_str().to_owned(),
            r.actor_email.clone().unwrap_or_default(),
            r.actor_id.clone(),
            r.actor_type.as_str().to_owned(),
            r.actor_role.clone().unwrap_or_default(),
            r.resource_type.clone(),
            r.resource_id.clone().unwrap_or_default(),
            r.resource_name.clone().unwrap_or_default(),
            r.status.as_str().to_owned(),
            r.error_message.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn csv_field(f: &str) -> String {
    // A leading formula character is neutralised so spreadsheets do not execute it.
    let f = if f.starts_with(['=', '+', '-', '@']) { format!("'{f}") } else { f.to_owned() };
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}

/// `audit-logs-<ISO timestamp with : and . replaced by ->.<ext>`.
pub fn export_file_name(now_ms: i64, ext: &str) -> String {
    format!("audit-logs-{}.{ext}", crate::id::iso8601(now_ms).replace([':', '.'], "-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draft(action: &str) -> AuditDraft {
        let mut d = AuditDraft::new("org1", &Actor::cli(), &RequestMeta::default(), Category::Member, action, "member");
        d.timestamp = 1000;
        d.states(Some(json!({"role":"member","b":{"z":1,"a":2}})), Some(json!({"role":"admin","b":{"a":2,"z":1}})))
    }

    fn chain(n: usize) -> Vec<AuditRecord> {
        let mut rows: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let prev = rows.last().map(|r| r.integrity_hash.clone()).unwrap_or_default();
            let r = seal(draft(&format!("a{i}")), format!("id{i}"), i as i64 + 1, i as i64 + 1, &prev);
            if let Some(last) = rows.last_mut() {
                last.chain_successor = Some(r.id.clone());
            }
            rows.push(r);
        }
        rows
    }

    #[test]
    fn changed_fields_are_the_differing_keys() {
        let r = seal(draft("x"), "i".into(), 1, 1, "");
        assert_eq!(r.changed_fields, Some(vec!["role".to_string()]));
    }

    #[test]
    fn canonical_sorts_nested_keys() {
        let mut s = String::new();
        write_canonical(&json!({"b":{"z":1,"a":[{"y":1,"x":2}]},"a":null}), &mut s);
        assert_eq!(s, r#"{"a":null,"b":{"a":[{"x":2,"y":1}],"z":1}}"#);
    }

    #[test]
    fn intact_chain_verifies() {
        let rows = chain(5);
        assert_eq!(verify_chain("org1", &rows).broken, None);
    }

    #[test]
    fn edited_removed_and_truncated_rows_are_found() {
        let mut rows = chain(5);
        rows[2].resource_name = Some("changed".into());
        let b = verify_chain("org1", &rows).broken.unwrap();
        assert_eq!(b.seq, 3);
        assert!(b.reason.contains("edited"));

        let mut rows = chain(5);
        rows.remove(1);
        let b = verify_chain("org1", &rows).broken.unwrap();
        assert_eq!(b.seq, 1, "the row before the gap names a missing successor");

        let mut rows = chain(5);
        rows.pop();
        let b = verify_chain("org1", &rows).broken.unwrap();
        assert_eq!(b.seq, 4);
        assert!(b.reason.contains("newest"));
    }

    #[test]
    fn csv_quotes_and_neutralises_formulas() {
        let mut r = seal(draft("x"), "i".into(), 1, 1, "");
        r.resource_name = Some("=HYPERLINK(\"x\"),y".into());
        let csv = to_csv(&[r]);
        assert!(csv.lines().nth(1).unwrap().contains("\"'=HYPERLINK(\"\"x\"\"),y\""), "{csv}");
    }
}
