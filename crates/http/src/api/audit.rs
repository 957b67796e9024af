//! Reading, filtering, exporting and verifying the audit log.

use crate::auth::Granted;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tale_core::audit::{self, AuditFilter};
use tale_core::Error;

/// Query parameters shared by the list, the export and the audit page.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub category: Option<String>,
    pub actor: Option<String>,
    /// RFC 3339 or epoch milliseconds.
    pub from: Option<String>,
    pub to: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<u32>,
    pub format: Option<String>,
}

impl AuditQuery {
    pub fn filter(&self) -> Result<AuditFilter, Error> {
        let time = |v: &Option<String>, name: &str| -> Result<Option<i64>, Error> {
            match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => tale_core::id::parse_time(s)
                    .map(Some)
                    .ok_or_else(|| Error::invalid(format!("{name} must be an RFC 3339 time or epoch milliseconds"))),
            }
        };
        Ok(AuditFilter {
            category: match self.category.as_deref().filter(|s| !s.is_empty()) {
                Some(c) => Some(c.parse()?),
                None => None,
            },
            actor: self.actor.clone().filter(|s| !s.trim().is_empty()),
            from_ms: time(&self.from, "from")?,
            to_ms: time(&self.to, "to")?,
            before_seq: self.before,
            limit: self.limit.unwrap_or(100),
        })
    }
}

pub async fn list(State(state): State<AppState>, g: Granted, Query(q): Query<AuditQuery>) -> Result<Response, ApiError> {
    let filter = q.filter()?;
    // The route's access check already ran for this org; the key includes the org.
    let key = format!("{}|{filter:?}", g.grant.org_id);
    let generation = state.services.cache_generation();
    let cached = state.audit_pages.lock().ok().and_then(|m| m.get(&key).filter(|(g, _)| *g == generation).map(|(_, b)| b.clone()));
    let body = match cached {
        Some(body) => body,
        None => {
            let rows = state.services.audit_entries(&g.grant, &filter).await?;
            let next = rows.last().map(|r| r.seq).filter(|s| *s > 1);
            let body = axum::body::Bytes::from(
                serde_json::to_vec(&json!({"entries": rows, "nextBefore": next})).map_err(|e| Error::Internal(e.to_string()))?,
            );
            if let Ok(mut m) = state.audit_pages.lock() {
                if m.len() >= 64 {
                    m.clear();
                }
                m.insert(key, (generation, body.clone()));
            }
            body
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub async fn export(State(state): State<AppState>, g: Granted, Query(q): Query<AuditQuery>) -> Result<Response, ApiError> {
    let rows = state.services.audit_export(&g.grant, &q.filter()?).await?;
    let now = tale_core::id::now_ms();
    let (body, mime, ext) = match q.format.as_deref().unwrap_or("csv") {
        "csv" => (audit::to_csv(&rows), "text/csv; charset=utf-8", "csv"),
        "json" => (
            serde_json::to_string_pretty(&rows).map_err(|e| Error::Internal(e.to_string()))?,
            "application/json",
            "json",
        ),
        other => return Err(Error::invalid(format!("format must be csv or json, not '{other}'")).into()),
    };
    let disposition = format!("attachment; filename=\"{}\"", audit::export_file_name(now, ext));
    Ok(([(header::CONTENT_TYPE, mime.to_owned()), (header::CONTENT_DISPOSITION, disposition)], body).into_response())
}

pub async fn verify(State(state): State<AppState>, g: Granted) -> Result<Json<Value>, ApiError> {
    let report = state.services.verify_audit(&g.grant).await?;
    Ok(Json(json!({"intact": report.broken.is_none(), "rows": report.rows, "broken": report.broken})))
}
