//! Live chat over the WebSocket: `{"type":"subscribe","org":…,"topic":"thread","id":…}` answers
//! with a `snapshot` of the thread (the live answer included, with its `seq`), then relays the
//! thread's events: `turn` (a new question and its empty answer, placed under their parent),
//! `delta` and `part` (numbered, so a tab applies each once), `message` (an answer's final state),
//! `renamed`, `deleted`. When the thread's shape changes otherwise (a branch switch) or the tab
//! falls behind, a fresh snapshot is sent instead.
//!
//! The socket's own task receives the thread's broadcast and sends each stream event as it was
//! serialised once for every tab: no task or copy in between, as that is paid per token.
//! Ownership is re-checked before every snapshot and every event that finishes an answer or
//! changes the thread, so signing out or losing access stops the stream at the next such event.

use crate::auth::principal;
use crate::state::AppState;
use axum::extract::ws::Utf8Bytes;
use axum::http::HeaderMap;
use serde_json::json;
use tale_chat::live::Event;
use tale_chat::Caller;
use tale_core::audit::RequestMeta;
use tale_core::permission::{Grant, Permission};
use tale_core::service::Principal;
use tale_core::Error;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

#[derive(serde::Deserialize)]
struct EventKind {
    #[serde(rename = "type")]
    kind: String,
}

/// One tab's subscription to one thread.
pub struct ThreadWatch {
    state: AppState,
    headers: HeaderMap,
    org: String,
    thread_id: String,
    locale: String,
}

/// What to send for an event, and whether the subscription ends with it.
pub struct Outgoing {
    pub frame: Utf8Bytes,
    pub last: bool,
}

impl ThreadWatch {
    /// Checks access and subscribes: the watch, its events, and the snapshot to send first.
    pub async fn open(state: AppState, headers: HeaderMap, org: String, thread_id: String) -> Result<(Self, BroadcastStream<Event>, Utf8Bytes), Error> {
        let locale = crate::api::chat::locale(&headers);
        let watch = ThreadWatch { state, headers, org, thread_id, locale };
        let (p, grant) = watch.authorize().await?;
        let meta = RequestMeta::default();
        let c = Caller { principal: &p, grant: &grant, meta: &meta, locale: &watch.locale };
        let (events, view): (broadcast::Receiver<Event>, _) = watch.state.chat.subscribe(&c, &watch.thread_id).await?;
        let first = json!({"type": "snapshot", "org": watch.org, "topic": "thread", "id": watch.thread_id, "data": view}).to_string();
        Ok((watch, BroadcastStream::new(events), first.into()))
    }

    async fn authorize(&self) -> Result<(Principal, Grant), Error> {
        let p = principal(&self.state, &self.headers).await?.ok_or(Error::Unauthenticated)?;
        let grant = self.state.services.grant(&p, &self.org, Permission::ChatUse).await?;
        Ok((p, grant))
    }

    async fn snapshot(&self) -> Result<Utf8Bytes, Error> {
        let (p, grant) = self.authorize().await?;
        let meta = RequestMeta::default();
        let c = Caller { principal: &p, grant: &grant, meta: &meta, locale: &self.locale };
        let view = self.state.chat.thread(&c, &self.thread_id).await?;
        Ok(json!({"type": "snapshot", "org": self.org, "topic": "thread", "id": self.thread_id, "data": view}).to_string().into())
    }

    async fn still_allowed(&self) -> Result<(), Error> {
        let (p, grant) = self.authorize().await?;
        let meta = RequestMeta::default();
        let c = Caller { principal: &p, grant: &grant, meta: &meta, locale: &self.locale };
        self.state.chat.still_owns(&c, &self.thread_id).await
    }

    pub fn error(&self, e: &Error) -> Utf8Bytes {
        let (status, code, message) = crate::error::domain_parts(e);
        json!({"type": "error", "org": self.org, "topic": "thread", "id": self.thread_id,
               "error": {"code": code, "message": message, "status": status.as_u16()}})
        .to_string()
        .into()
    }

    fn outgoing(&self, result: Result<Utf8Bytes, Error>) -> Outgoing {
        match result {
            Ok(frame) => Outgoing { frame, last: false },
            Err(e) => Outgoing { frame: self.error(&e), last: true },
        }
    }

    /// What the tab gets for one of the thread's events.
    pub async fn relay(&self, event: Result<Event, BroadcastStreamRecvError>) -> Option<Outgoing> {
        let event = match event {
            // Fell behind: the snapshot has everything it missed.
            Err(BroadcastStreamRecvError::Lagged(_)) => return Some(self.outgoing(self.snapshot().await)),
            Ok(event) => event,
        };
        let frame = Utf8Bytes::try_from(event).ok()?;
        if tale_chat::live::is_stream_event(frame.as_bytes()) {
            return Some(Outgoing { frame, last: false });
        }
        let kind = serde_json::from_str::<EventKind>(frame.as_str()).map(|k| k.kind).unwrap_or_default();
        match kind.as_str() {
            // A new turn is part of the answer's stream: it goes out as fast as the deltas after it.
            "turn" => return Some(Outgoing { frame, last: false }),
            "deleted" => return Some(Outgoing { frame, last: true }),
            "changed" => return Some(self.outgoing(self.snapshot().await)),
            _ => {}
        }
        Some(self.outgoing(self.still_allowed().await.map(|()| frame)))
    }
}
