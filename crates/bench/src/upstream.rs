//! A scripted OpenAI-compatible streaming upstream inside the bench process, stamping every content delta with the instant it was written.
//!
//! It speaks HTTP/1.1 on raw TCP rather than through a framework so that each SSE chunk is exactly
//! one `write` and the stamp is taken just before it: a framework's body channel and buffering
//! would sit between the stamp and the socket. Stamps are read from the one monotonic clock the
//! WebSocket side of the bench also uses ([`now_ns`]), so "WebSocket arrival − upstream write" is
//! the time the platform added, with no clock skew and no bookkeeping shared between the two.
//!
//! What to stream comes from the prompt itself: the question carries a [`Plan`] marker, so any
//! number of concurrent chats can ask for different answers without coordination.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds on the bench's single monotonic clock: upstream writes and WebSocket arrivals.
pub fn now_ns() -> u64 {
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What one answer streams: `deltas` content chunks, the first `first_us` after the response
/// headers (the model "thinking"), then one every `every_us`; 0 means as fast as the socket
/// takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub deltas: u32,
    pub first_us: u64,
    pub every_us: u64,
}

const MARK: &str = "BENCH[";

impl Plan {
    /// The marker the question carries.
    pub fn marker(&self) -> String {
        format!("{MARK}n={},first={},every={}]", self.deltas, self.first_us, self.every_us)
    }

    /// The last marker in a request body: earlier turns of the same thread carry older ones.
    pub fn find(body: &str) -> Option<Plan> {
        let start = body.rfind(MARK)? + MARK.len();
        let rest = &body[start..];
        let spec = &rest[..rest.find(']')?];
        let mut plan = Plan { deltas: 0, first_us: 0, every_us: 0 };
        for pair in spec.split(',') {
            let (key, value) = pair.split_once('=')?;
            match key {
                "n" => plan.deltas = value.parse().ok()?,
                "first" => plan.first_us = value.parse().ok()?,
                "every" => plan.every_us = value.parse().ok()?,
                _ => return None,
            }
        }
        Some(plan)
    }
}

/// What a delta's text says about itself: `[index:written_ns]`, and on the first delta also when
/// the upstream received the request, `[0:written_ns:request_ns]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub index: u32,
    pub written_ns: u64,
    pub request_ns: Option<u64>,
}

impl Stamp {
    pub fn text(&self) -> String {
        match self.request_ns {
            Some(r) => format!("[{}:{}:{r}]", self.index, self.written_ns),
            None => format!("[{}:{}]", self.index, self.written_ns),
        }
    }

    pub fn parse(text: &str) -> Option<Stamp> {
        let mut parts = text.strip_prefix('[')?.strip_suffix(']')?.split(':');
        let index = parts.next()?.parse().ok()?;
        let written_ns = parts.next()?.parse().ok()?;
        let request_ns = match parts.next() {
            Some(r) => Some(r.parse().ok()?),
            None => None,
        };
        parts.next().is_none().then_some(Stamp { index, written_ns, request_ns })
    }
}

/// What the upstream saw, for the report's sanity checks.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    /// Streams written to the end.
    pub streams: AtomicU64,
    /// Requests without a plan, answered 404 (a prompt the bench did not write).
    pub unplanned: AtomicU64,
    /// Streams whose connection broke while writing.
    pub broken: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A running upstream; dropping it stops accepting (open streams end with their connections).
pub struct Upstream {
    /// `http://127.0.0.1:PORT/v1`, the provider's `baseUrl`.
    pub base_url: String,
    pub counters: Arc<Counters>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

pub async fn start() -> Result<Upstream> {
    now_ns();
    let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot bind the scripted upstream")?;
    let addr = listener.local_addr()?;
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let accept = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((socket, _)) => {
                    let c = c.clone();
                    tokio::spawn(async move {
                        if connection(socket, &c).await.is_err() {
                            c.broken.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                // Out of descriptors, most likely: wait rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    Ok(Upstream { base_url: format!("http://{addr}/v1"), counters, accept })
}

struct Request {
    path: String,
    body: String,
    /// When the request head had arrived.
    at_ns: u64,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The next request on a keep-alive connection; `None` when the client closed it between requests.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Request>> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            bail!("request head over 1 MiB");
        }
        buf.reserve(16 * 1024);
        if s.read_buf(buf).await? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            bail!("connection closed mid-request");
        }
    };
    let at_ns = now_ns();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    if head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:")) {
        bail!("chunked request bodies are not supported by the scripted upstream");
    }
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        buf.reserve(64 * 1024);
        if s.read_buf(buf).await? == 0 {
            bail!("connection closed mid-body");
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    buf.drain(..head_end + length);
    Ok(Some(Request { path, body, at_ns }))
}

async fn connection(mut s: TcpStream, c: &Counters) -> Result<()> {
    // Real streaming servers disable Nagle; otherwise a delta could wait for the previous one's ACK.
    s.set_nodelay(true)?;
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut s, &mut buf).await? {
        c.requests.fetch_add(1, Ordering::Relaxed);
        let plan = if req.path.ends_with("/chat/completions") { Plan::find(&req.body) } else { None };
        let Some(plan) = plan else {
            c.unplanned.fetch_add(1, Ordering::Relaxed);
            let msg = "no BENCH[...] plan in the prompt\n";
            let reply = format!("HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{msg}", msg.len());
            s.write_all(reply.as_bytes()).await?;
            continue;
        };
        if !req.body.contains("\"stream\":true") {
            s.write_all(whole_reply(plan).as_bytes()).await?;
            continue;
        }
        s = stream(s, plan, req.at_ns, c).await?;
    }
    Ok(())
}

fn chunk(model_json: &str) -> String {
    format!(r#"{{"id":"bench","object":"chat.completion.chunk","created":0,"model":"llm",{model_json}}}"#)
}

/// One SSE event as one HTTP chunk.
fn http_chunk(json: &str) -> String {
    let event = format!("data: {json}\n\n");
    format!("{:x}\r\n{event}\r\n", event.len())
}

fn delta_chunk(stamp: Stamp) -> String {
    // The stamp has only digits, brackets and colons: no JSON escaping needed.
    http_chunk(&chunk(&format!(r#""choices":[{{"index":0,"delta":{{"content":"{}"}},"finish_reason":null}}]"#, stamp.text())))
}

fn usage(plan: Plan) -> String {
    format!(r#""usage":{{"prompt_tokens":20,"completion_tokens":{0},"total_tokens":{1}}}"#, plan.deltas, plan.deltas + 20)
}

/// A non-streamed answer, should anything ask for one: the plan's deltas in one message.
fn whole_reply(plan: Plan) -> String {
    let body = format!(
        r#"{{"id":"bench","object":"chat.completion","created":0,"model":"llm","choices":[{{"index":0,"message":{{"role":"assistant","content":"{} deltas"}},"finish_reason":"stop"}}],{}}}"#,
        plan.deltas,
        usage(plan)
    );
    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
}

const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";

/// Headers and the role chunk at once, the content deltas as planned, then the finish chunk,
/// usage, `[DONE]` and the end of the chunked body. Returns the connection for the next request.
async fn stream(mut s: TcpStream, plan: Plan, request_ns: u64, c: &Counters) -> Result<TcpStream> {
    let head = format!("{HEAD}{}", http_chunk(&chunk(r#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]"#)));
    s.write_all(head.as_bytes()).await?;
    let first = Instant::now() + Duration::from_micros(plan.first_us);
    let every = Duration::from_micros(plan.every_us);
    let result = if plan.every_us == 0 || plan.every_us >= 1000 {
        paced_async(&mut s, plan, first, every, request_ns).await.map(|()| s)
    } else {
        // Tokio's timer has 1 ms granularity, so sub-millisecond pacing runs on a blocking
        // thread with nanosleep; the schedule is absolute, so oversleeping one delta shortens
        // the next wait instead of slowing the stream.
        let std_socket = s.into_std()?;
        std_socket.set_nonblocking(false)?;
        let (std_socket, r) = tokio::task::spawn_blocking(move || {
            let mut sock = std_socket;
            let r = paced_blocking(&mut sock, plan, first, every, request_ns);
            (sock, r)
        })
        .await?;
        r.and_then(|()| {
            std_socket.set_nonblocking(true)?;
            Ok(TcpStream::from_std(std_socket)?)
        })
    };
    let mut s = match result {
        Ok(s) => s,
        Err(e) => {
            c.broken.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
    };
    let finish = http_chunk(&chunk(r#""choices":[{"index":0,"delta":{},"finish_reason":"stop"}]"#));
    let tail = format!("{finish}{}{}0\r\n\r\n", http_chunk(&chunk(&format!(r#""choices":[],{}"#, usage(plan)))), http_chunk("[DONE]"));
    s.write_all(tail.as_bytes()).await?;
    c.streams.fetch_add(1, Ordering::Relaxed);
    Ok(s)
}

fn stamp(index: u32, request_ns: u64) -> Stamp {
    Stamp { index, written_ns: now_ns(), request_ns: (index == 0).then_some(request_ns) }
}

async fn paced_async(s: &mut TcpStream, plan: Plan, first: Instant, every: Duration, request_ns: u64) -> Result<()> {
    for i in 0..plan.deltas {
        if i == 0 || !every.is_zero() {
            tokio::time::sleep_until((first + every * i).into()).await;
        }
        s.write_all(delta_chunk(stamp(i, request_ns)).as_bytes()).await?;
    }
    Ok(())
}

fn paced_blocking(s: &mut std::net::TcpStream, plan: Plan, first: Instant, every: Duration, request_ns: u64) -> Result<()> {
    for i in 0..plan.deltas {
        let due = first + every * i;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        s.write_all(delta_chunk(stamp(i, request_ns)).as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plans_and_stamps_round_trip() {
        let plan = Plan { deltas: 150, first_us: 5000, every_us: 20_000 };
        let body = format!(r#"{{"messages":[{{"content":"{} old"}},{{"content":"{} new"}}]}}"#, Plan { deltas: 1, ..plan }.marker(), plan.marker());
        assert_eq!(Plan::find(&body), Some(plan), "the last marker wins");
        assert_eq!(Plan::find("no marker"), None);
        assert_eq!(Plan::find("BENCH[n=1,bad=2]"), None);
        for s in [Stamp { index: 0, written_ns: 12, request_ns: Some(7) }, Stamp { index: 41, written_ns: 99, request_ns: None }] {
            assert_eq!(Stamp::parse(&s.text()), Some(s));
        }
        assert_eq!(Stamp::parse("[1:2:3:4]"), None);
        assert_eq!(Stamp::parse("hello"), None);
    }

    #[test]
    fn chunks_are_valid_sse_in_http_chunks() {
        let c = delta_chunk(Stamp { index: 3, written_ns: 5, request_ns: None });
        let (len, rest) = c.split_once("\r\n").unwrap();
        let event = rest.strip_suffix("\r\n").unwrap();
        assert_eq!(usize::from_str_radix(len, 16).unwrap(), event.len());
        let json: serde_json::Value = serde_json::from_str(event.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(json["choices"][0]["delta"]["content"], "[3:5]");
    }
}
