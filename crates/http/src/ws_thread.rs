//! Live chat over the WebSocket: `{"type":"subscribe","org":…,"topic":"thread","id":…}` answers
//! with a `snapshot` of the thread (the live answer included, with its `seq`), then forwards the
//! thread's events: `delta` and `part` (numbered, so a tab applies each once), `message` (an
//! answer's final state), `renamed`, `deleted`. When the thread's shape changes (a new turn, a
//! branch switch) or the tab falls behind, a fresh snapshot is sent instead.
//!
//! Ownership is re-checked before every snapshot and every non-delta event, so signing out or
//! losing access stops the stream at the next such event.

use crate::auth::principal;
use crate::state::AppState;
use axum::http::HeaderMap;
use serde_json::{json, Value};
use tale_chat::Caller;
use tale_core::audit::RequestMeta;
use tale_core::permission::{Grant, Permission};
use tale_core::service::Principal;
use tale_core::Error;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

struct Subscriber {
    state: AppState,
    headers: HeaderMap,
    org: String,
    thread_id: String,
    locale: String,
}

impl Subscriber {
    async fn authorize(&self) -> Result<(Principal, Grant), Error> {
        let p = principal(&self.state, &self.headers).await?.ok_or(Error::Unauthenticated)?;
        let grant = self.state.services.grant(&p, &self.org, Permission::ChatUse).await?;
        Ok((p, grant))
    }

    async fn snapshot(&self) -> Result<String, Error> {
        let (p, grant) = self.authorize().await?;
        let meta = RequestMeta::default();
        let c = Caller { principal: &p, grant: &grant, meta: &meta, locale: &self.locale };
        let view = self.state.chat.thread(&c, &self.thread_id).await?;
        Ok(json!({"type": "snapshot", "org": self.org, "topic": "thread", "id": self.thread_id, "data": view}).to_string())
    }

    async fn still_allowed(&self) -> Result<(), Error> {
        let (p, grant) = self.authorize().await?;
        let meta = RequestMeta::default();
        let c = Caller { principal: &p, grant: &grant, meta: &meta, locale: &self.locale };
        self.state.chat.still_owns(&c, &self.thread_id).await
    }

    fn error(&self, e: &Error) -> String {
        let (status, code, message) = crate::error::domain_parts(e);
        json!({"type": "error", "org": self.org, "topic": "thread", "id": self.thread_id,
               "error": {"code": code, "message": message, "status": status.as_u16()}})
        .to_string()
    }
}

/// Subscribes to a thread; the returned task forwards its events into `out` until aborted.
pub async fn subscribe(state: AppState, headers: HeaderMap, org: String, thread_id: String, out: mpsc::Sender<String>) -> Result<JoinHandle<()>, Error> {
    let locale = crate::api::chat::locale(&headers);
    let sub = Subscriber { state, headers, org, thread_id, locale };
    let (p, grant) = sub.authorize().await?;
    let meta = RequestMeta::default();
    let c = Caller { principal: &p, grant: &grant, meta: &meta, locale: &sub.locale };
    let (mut events, view) = sub.state.chat.subscribe(&c, &sub.thread_id).await?;
    let first = json!({"type": "snapshot", "org": sub.org, "topic": "thread", "id": sub.thread_id, "data": view}).to_string();
    if out.send(first).await.is_err() {
        return Err(Error::Internal("the socket closed".into()));
    }
    Ok(tokio::spawn(async move {
        loop {
            let outgoing = match events.recv().await {
                // Deltas and parts are the hot path: forwarded as serialised, unparsed.
                Ok(event) if event.starts_with(r#"{"type":"delta""#) || event.starts_with(r#"{"type":"part""#) => event.to_string(),
                Ok(event) => {
                    let kind = serde_json::from_str::<Value>(&event).ok().and_then(|v| v["type"].as_str().map(str::to_owned)).unwrap_or_default();
                    match kind.as_str() {
                        "changed" => sub.snapshot().await.unwrap_or_else(|e| sub.error(&e)),
                        "deleted" => event.to_string(),
                        _ => match sub.still_allowed().await {
                            Ok(()) => event.to_string(),
                            Err(e) => sub.error(&e),
                        },
                    }
                }
                Err(RecvError::Lagged(_)) => sub.snapshot().await.unwrap_or_else(|e| sub.error(&e)),
                Err(RecvError::Closed) => return,
            };
            let stop = outgoing.starts_with(r#"{"type":"error""#) || outgoing.starts_with(r#"{"type":"deleted""#);
            if out.send(outgoing).await.is_err() || stop {
                return;
            }
        }
    }))
}
