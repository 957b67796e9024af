//! Live answers: every tab subscribed to a thread receives the same deltas, in order, as they
//! stream; a tab that (re)subscribes gets the answer so far and continues from there.
//!
//! Each thread has one broadcast channel of pre-serialised events and at most one live answer.
//! Appending to the answer, numbering the event (`seq`) and sending it happen under one lock, and
//! so does taking a snapshot together with a new subscription, so a subscriber sees every event
//! after its snapshot exactly once. Progress is persisted in batches by [`flush_loop`].

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tale_core::chat::MessageProgress;
use tale_core::store::Store;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events a slow subscriber may fall behind by before it is resynchronised with a snapshot.
const CHANNEL_CAPACITY: usize = 1024;

/// An answer being written.
#[derive(Debug)]
pub struct LiveAnswer {
    pub run_id: String,
    pub message_id: String,
    pub content: String,
    pub parts: Vec<Value>,
    /// Number of the last event sent for this answer.
    pub seq: u64,
    /// Changed since the last persisted batch.
    dirty: bool,
    pub cancel: CancellationToken,
}

/// The answer so far, as a (re)subscribing tab needs it.
#[derive(Debug, Clone)]
pub struct LiveSnapshot {
    pub run_id: String,
    pub message_id: String,
    pub content: String,
    pub parts: Vec<Value>,
    pub seq: u64,
}

/// A serialised event as every subscriber's socket sends it (cheap to clone for each of them).
pub type Event = Bytes;

/// The hot-path events, serialised straight from borrowed fields: `type` comes first so a
/// relay can tell a delta by its prefix without parsing it.
#[derive(Serialize)]
struct StreamEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    thread: &'a str,
    message: &'a str,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<&'a Value>,
}

/// Whether an event is part of an answer's stream (`delta`, `part`), which subscribers relay
/// without looking further.
pub fn is_stream_event(event: &[u8]) -> bool {
    event.starts_with(br#"{"type":"delta""#) || event.starts_with(br#"{"type":"part""#)
}

pub struct Channel {
    thread_id: String,
    sender: broadcast::Sender<Event>,
    live: Mutex<Option<LiveAnswer>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Channel {
    fn send(&self, event: Event) {
        // No subscribers is fine: nobody is watching this thread right now.
        let _ = self.sender.send(event);
    }

    fn send_stream(&self, kind: &'static str, message: &str, seq: u64, text: Option<&str>, part: Option<&Value>) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        let event = StreamEvent { kind, thread: &self.thread_id, message, seq, text, part };
        match serde_json::to_vec(&event) {
            Ok(bytes) => self.send(Bytes::from(bytes)),
            Err(e) => tracing::error!(error = %e, "could not serialise a live event"),
        }
    }

    /// Appends streamed text and sends it as a delta.
    pub fn text(&self, delta: &str) {
        let mut live = locked(&self.live);
        let Some(a) = live.as_mut() else { return };
        a.content.push_str(delta);
        a.seq += 1;
        a.dirty = true;
        self.send_stream("delta", &a.message_id, a.seq, Some(delta), None);
    }

    /// Adds a part, or replaces the one with the same `id` (a tool call that finished).
    pub fn part(&self, part: Value) {
        let mut live = locked(&self.live);
        let Some(a) = live.as_mut() else { return };
        match a.parts.iter_mut().find(|p| p.get("id").is_some() && p.get("id") == part.get("id") && p.get("type") == part.get("type")) {
            Some(existing) => *existing = part.clone(),
            None => a.parts.push(part.clone()),
        }
        a.seq += 1;
        a.dirty = true;
        self.send_stream("part", &a.message_id, a.seq, None, Some(&part));
    }

    /// Ends the live answer, returning its final state.
    pub fn end(&self) -> Option<LiveAnswer> {
        locked(&self.live).take()
    }

    pub fn snapshot(&self) -> Option<LiveSnapshot> {
        locked(&self.live).as_ref().map(|a| LiveSnapshot {
            run_id: a.run_id.clone(),
            message_id: a.message_id.clone(),
            content: a.content.clone(),
            parts: a.parts.clone(),
            seq: a.seq,
        })
    }
}

#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, Arc<Channel>>>,
}

impl Hub {
    fn channel(&self, thread_id: &str) -> Arc<Channel> {
        locked(&self.channels)
            .entry(thread_id.to_owned())
            .or_insert_with(|| {
                let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
                Arc::new(Channel { thread_id: thread_id.to_owned(), sender, live: Mutex::new(None) })
            })
            .clone()
    }

    /// Subscribes to a thread and returns the live answer as of that moment.
    pub fn subscribe(&self, thread_id: &str) -> (broadcast::Receiver<Event>, Option<LiveSnapshot>) {
        let channel = self.channel(thread_id);
        let live = locked(&channel.live);
        let receiver = channel.sender.subscribe();
        let snapshot = live.as_ref().map(|a| LiveSnapshot {
            run_id: a.run_id.clone(),
            message_id: a.message_id.clone(),
            content: a.content.clone(),
            parts: a.parts.clone(),
            seq: a.seq,
        });
        (receiver, snapshot)
    }

    /// Starts a live answer, or `None` when the thread already has one.
    pub fn begin(&self, thread_id: &str, run_id: &str, message_id: &str, content: &str, parts: &[Value]) -> Option<(Arc<Channel>, CancellationToken)> {
        let channel = self.channel(thread_id);
        let mut live = locked(&channel.live);
        if live.is_some() {
            return None;
        }
        let cancel = CancellationToken::new();
        *live = Some(LiveAnswer {
            run_id: run_id.to_owned(),
            message_id: message_id.to_owned(),
            content: content.to_owned(),
            parts: parts.to_vec(),
            seq: 0,
            dirty: false,
            cancel: cancel.clone(),
        });
        drop(live);
        Some((channel, cancel))
    }

    pub fn live(&self, thread_id: &str) -> Option<LiveSnapshot> {
        let channel = locked(&self.channels).get(thread_id).cloned()?;
        channel.snapshot()
    }

    /// Asks the thread's live answer to stop. False when nothing is being written.
    pub fn stop(&self, thread_id: &str) -> bool {
        let Some(channel) = locked(&self.channels).get(thread_id).cloned() else { return false };
        let live = locked(&channel.live);
        match live.as_ref() {
            Some(a) => {
                a.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops every live answer (server shutdown).
    pub fn stop_all(&self) {
        for channel in locked(&self.channels).values() {
            if let Some(a) = locked(&channel.live).as_ref() {
                a.cancel.cancel();
            }
        }
    }

    /// Sends an event that is not part of an answer's stream (a finished message, a changed thread).
    pub fn publish(&self, thread_id: &str, event: &Value) {
        if let Some(channel) = locked(&self.channels).get(thread_id).cloned() {
            channel.send(Bytes::from(event.to_string()));
        }
    }

    pub fn live_count(&self) -> usize {
        locked(&self.channels).values().filter(|c| locked(&c.live).is_some()).count()
    }

    /// Takes the answers changed since the last call, and forgets idle channels.
    fn take_progress(&self, at: i64) -> Vec<MessageProgress> {
        let mut channels = locked(&self.channels);
        let mut out = Vec::new();
        channels.retain(|_, channel| {
            let mut live = locked(&channel.live);
            if let Some(a) = live.as_mut().filter(|a| a.dirty) {
                a.dirty = false;
                out.push(MessageProgress { id: a.message_id.clone(), content: a.content.clone(), parts: a.parts.clone(), updated_at: at });
            }
            live.is_some() || channel.sender.receiver_count() > 0
        });
        out
    }
}

/// Persists streaming answers every `every` in one transaction, so a crash loses at most that
/// much of an answer. Runs until `stop` fires, then writes one last batch.
pub async fn flush_loop(hub: Arc<Hub>, store: Arc<dyn Store>, every: Duration, stop: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(every) => false,
            _ = stop.cancelled() => true,
        };
        let batch = hub.take_progress(tale_core::id::now_ms());
        if let Err(e) = store.save_progress(&batch).await {
            tracing::warn!(error = %e, answers = batch.len(), "could not save streaming answers; retrying next time");
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn subscribers_get_every_event_after_their_snapshot() {
        let hub = Hub::default();
        let (channel, _cancel) = hub.begin("t", "r", "m", "", &[]).unwrap();
        assert!(hub.begin("t", "r2", "m2", "", &[]).is_none(), "one live answer per thread");
        channel.text("Hel");
        let (mut rx, snap) = hub.subscribe("t");
        let snap = snap.unwrap();
        assert_eq!((snap.content.as_str(), snap.seq), ("Hel", 1));
        channel.text("lo");
        channel.part(json!({"type": "tool", "id": "c1", "status": "running"}));
        channel.part(json!({"type": "tool", "id": "c1", "status": "ok"}));
        let raw = rx.try_recv().unwrap();
        assert!(is_stream_event(&raw), "a delta is told by its prefix: {}", String::from_utf8_lossy(&raw));
        let first: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!((first["seq"].as_u64(), first["text"].as_str()), (Some(2), Some("lo")));
        assert_eq!(hub.live("t").unwrap().parts.len(), 1, "a part with the same id is replaced");
        let progress = hub.take_progress(5);
        assert_eq!(progress.len(), 1);
        assert_eq!(progress[0].content, "Hello");
        assert!(hub.take_progress(6).is_empty(), "nothing new since the last batch");
        assert!(hub.stop("t"));
        let ended = channel.end().unwrap();
        assert!(ended.cancel.is_cancelled());
        assert!(!hub.stop("t"));
        drop(rx);
        hub.take_progress(7);
        assert!(locked(&hub.channels).is_empty(), "idle channels are forgotten");
    }
}
