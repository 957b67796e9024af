//! Phase `chats`: many concurrent streaming chats at a model's pace (default 500 at 50 tokens/s), all asked at once; errors, per-delta added delay, server memory and CPU.
//!
//! One user, one session: each chat is its own thread with its own WebSocket, as 500 tabs would
//! be. Threads and sockets are set up before the clock starts; the measured part is what the
//! issue asks about, every question posted at once and every answer streamed to its end.

use crate::chat::{self, Followed, Socket};
use crate::procfs::Cpu;
use crate::server::Server;
use crate::stats::{r3, Summary};
use crate::stream::{ms_between, question, upstream_json};
use crate::upstream::{now_ns, Plan, Upstream};
use crate::{verdict, Bench};
use anyhow::Result;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const TARGET_DELAY_P99_MS: f64 = 20.0;
/// Set-up requests in flight at once: set-up is not what is measured, so it need not be rushed.
const SETUP_CONCURRENCY: usize = 16;
/// Other work above this share of the machine makes the figures those of a shared machine.
pub const BUSY_WARNING_CORES: f64 = 0.25;

struct ChatRun {
    posted_ns: u64,
    /// Why the question was not accepted (non-201 or transport), if it was not.
    refused: Option<String>,
    followed: Followed,
}

/// What the runs add up to.
struct Tally {
    failed: usize,
    /// Problems by kind, numbers left out: "3 of 150 deltas missing" and "5 of ..." count alike.
    kinds: BTreeMap<String, usize>,
    received: u64,
    resyncs: u64,
    delay: Summary,
    /// Where in the answers the delay sits: the start-up burst (first 10 deltas of every answer,
    /// while all the turns are being written) or the steady stream (second half).
    early: Summary,
    late: Summary,
    first: Summary,
    request: Summary,
    turn: Summary,
    /// First deltas written at least 5 ms before the `turn` event reached the tab but delivered
    /// within 1 ms after it: they waited behind it.
    behind: usize,
}

impl Tally {
    fn of(runs: &[ChatRun], deltas: u32) -> Tally {
        let (mut failed, mut kinds, mut received, mut resyncs, mut behind) = (0, BTreeMap::new(), 0, 0, 0);
        let (mut delay, mut early, mut late) = (Vec::with_capacity(runs.len() * deltas as usize), Vec::new(), Vec::new());
        let (mut first, mut request, mut turn) = (Vec::new(), Vec::new(), Vec::new());
        for r in runs {
            let f = &r.followed;
            let mut problems = f.problems(deltas);
            problems.extend(r.refused.clone());
            failed += usize::from(!problems.is_empty());
            for p in problems {
                let kind = p.split_whitespace().filter(|w| !w.chars().all(|c| c.is_ascii_digit())).collect::<Vec<_>>().join(" ");
                *kinds.entry(kind).or_default() += 1;
            }
            received += u64::from(f.deltas);
            resyncs += f.resyncs;
            delay.extend_from_slice(&f.delays_ms);
            early.extend(f.delays_ms.iter().take(10));
            late.extend_from_slice(f.delays_ms.get(f.delays_ms.len() / 2..).unwrap_or_default());
            if let Some(announced) = f.turn_ns {
                turn.push(ms_between(r.posted_ns, announced));
            }
            if let Some((arrived, stamp)) = f.first {
                if let Some(announced) = f.turn_ns.filter(|&s| s >= stamp.written_ns) {
                    behind += usize::from(ms_between(stamp.written_ns, announced) >= 5.0 && ms_between(announced, arrived) <= 1.0);
                }
                first.push(ms_between(stamp.written_ns, arrived));
                if let Some(req) = stamp.request_ns {
                    request.push(ms_between(r.posted_ns, req));
                }
            }
        }
        Tally {
            failed,
            kinds,
            received,
            resyncs,
            delay: Summary::of(delay),
            early: Summary::of(early),
            late: Summary::of(late),
            first: Summary::of(first),
            request: Summary::of(request),
            turn: Summary::of(turn),
            behind,
        }
    }
}

/// Samples the server's VmRSS every 100 ms and keeps the largest, until stopped.
fn rss_sampler(server: &Server, stop: Arc<AtomicBool>) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(0));
    let (p, pid) = (peak.clone(), server.pid());
    let task = tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            if let Some(kib) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse::<u64>().ok()))
            {
                p.fetch_max(kib, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (peak, task)
}

impl Bench {
    pub(crate) async fn chats(&mut self) -> Result<()> {
        let (up, server, session) = self.chat_server("chats").await?;
        let result = self.chats_on(&server, session, &up).await;
        server.stop().await;
        result
    }

    async fn chats_on(&mut self, server: &Server, session: chat::Session, up: &Upstream) -> Result<()> {
        let n = self.args.chats;
        let rate = self.args.tokens_per_s;
        let plan = Plan { deltas: self.args.chat_deltas, first_us: self.args.first_token_ms[0] * 1000, every_us: 1_000_000 / rate };
        let session = Arc::new(session);

        let threads: Vec<String> = futures_util::stream::iter(0..n).map(|_| session.new_thread()).buffered(SETUP_CONCURRENCY).try_collect().await?;
        let sockets: Vec<Socket> = futures_util::stream::iter(threads.iter())
            .map(|t| {
                let session = session.clone();
                async move {
                    let mut ws = session.socket().await?;
                    chat::subscribe(&mut ws, t).await?;
                    Ok::<_, anyhow::Error>(ws)
                }
            })
            .buffered(SETUP_CONCURRENCY)
            .try_collect()
            .await?;
        // A second of quiet first, measured: what else is using the machine goes in the report.
        let quiet0 = Cpu::now(server.pid())?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = quiet0.until(&Cpu::now(server.pid())?);
        let (rss_ready, _) = server.memory()?;

        let stop = Arc::new(AtomicBool::new(false));
        let (peak_kib, sampler) = rss_sampler(server, stop.clone());
        let q = question(plan);
        let limit = Duration::from_micros(plan.every_us * u64::from(plan.deltas)) + Duration::from_secs(60);
        let cpu0 = Cpu::now(server.pid())?;
        let tasks: Vec<_> = threads
            .into_iter()
            .zip(sockets)
            .map(|(thread, mut ws)| {
                let (session, q) = (session.clone(), q.clone());
                tokio::spawn(async move {
                    let posted_ns = now_ns();
                    let (asked, followed) = tokio::join!(session.ask(&thread, &q), chat::follow(&mut ws, &thread, plan.deltas, limit, |_| {}));
                    let refused = match asked {
                        Ok((201, _)) => None,
                        Ok((status, body)) => Some(format!("question answered {status}: {body}")),
                        Err(e) => Some(format!("{e:#}")),
                    };
                    (ChatRun { posted_ns, refused, followed }, ws)
                })
            })
            .collect();
        let mut runs = Vec::with_capacity(n);
        let mut sockets = Vec::with_capacity(n);
        for t in tasks {
            let (run, ws) = t.await?;
            runs.push(run);
            sockets.push(ws);
        }
        let cpu1 = Cpu::now(server.pid())?;
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.await;
        let (rss_done, hwm) = server.memory()?;
        for mut ws in sockets {
            let _ = ws.close(None).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss_settled, _) = server.memory()?;
        let peak = (peak_kib.load(Ordering::Relaxed) as f64 / 1024.0).max(rss_done);

        let t = Tally::of(&runs, plan.deltas);
        let cpu = cpu0.until(&cpu1);
        let expected = n as u64 * u64::from(plan.deltas);
        let pass = t.failed == 0 && t.delay.p99 <= TARGET_DELAY_P99_MS;

        self.say(format!(
            "{n} concurrent streaming chats, {} deltas each at {rate} tokens/s, all asked at once (target: no errors, p99 added delay per delta <= {TARGET_DELAY_P99_MS} ms): {}",
            plan.deltas,
            verdict(pass)
        ));
        self.say(format!(
            "  chats with errors {} of {n}   deltas received {} of {expected}   snapshots that moved an answer forward {}{}",
            t.failed,
            t.received,
            t.resyncs,
            if t.kinds.is_empty() { String::new() } else { format!("   {:?}", t.kinds) }
        ));
        let rows = [
            ("added delay per delta", &t.delay),
            ("  first 10 deltas of each answer", &t.early),
            ("  second half of each answer", &t.late),
            ("added delay, first delta", &t.first),
            ("POST question -> upstream request", &t.request),
            ("POST question -> turn event", &t.turn),
        ];
        for (name, s) in rows {
            self.say(format!("  {name:<34} p50 {:8.3} ms  p90 {:8.3}  p99 {:8.3}  max {:8.3}", s.median, s.p90, s.p99, s.max));
        }
        self.say(format!("  first deltas that waited behind the turn event (written >= 5 ms before it, delivered <= 1 ms after): {} of {n}", t.behind));
        self.say(format!(
            "  server VmRSS: {rss_ready:.1} MiB with {n} sockets subscribed, peak {peak:.1} MiB (VmHWM {hwm:.1}), {rss_done:.1} MiB when all ended, {rss_settled:.1} MiB 2 s after the sockets closed"
        ));
        // Per delta over the whole run: turn starts, the 500 ms progress flushes and the final
        // stores are spread over the deltas, as they are in production.
        let per_delta_us = cpu.server * 1e6 / expected.max(1) as f64;
        self.say(format!("  CPU over the {:.1} s run: {}; server {per_delta_us:.1} µs per delta, all its work included", cpu.wall, cpu.describe()));
        self.say(format!("  CPU in the quiet second before: {}", before.describe()));
        if before.cores(before.others) > BUSY_WARNING_CORES {
            self.say(format!("  WARNING: other work kept {:.2} cores busy before the run; these are not a quiet machine's figures", before.cores(before.others)));
        }
        let v = json!({
            "chats": n, "deltas_per_chat": plan.deltas, "tokens_per_s": rate, "first_token_ms": self.args.first_token_ms[0],
            "chats_with_errors": t.failed, "error_kinds": t.kinds, "deltas_expected": expected, "deltas_received": t.received,
            "added_delay_ms": t.delay.json(), "added_delay_first10_ms": t.early.json(), "added_delay_second_half_ms": t.late.json(),
            "first_delta_added_ms": t.first.json(), "post_to_upstream_request_ms": t.request.json(), "post_to_turn_event_ms": t.turn.json(),
            "first_deltas_behind_turn": t.behind, "resyncs": t.resyncs,
            "rss_ready_mib": r3(rss_ready), "rss_peak_mib": r3(peak), "hwm_mib": r3(hwm), "rss_done_mib": r3(rss_done), "rss_settled_mib": r3(rss_settled),
            "server_cpu_s": r3(cpu.server), "server_cpu_us_per_delta": r3(per_delta_us), "cpu": cpu.json(), "cpu_before": before.json(),
            "upstream": upstream_json(&up.counters),
            "target_delay_p99_ms": TARGET_DELAY_P99_MS, "pass": pass,
        });
        self.report.insert("chats".into(), v);
        Ok(())
    }
}
