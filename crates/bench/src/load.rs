//! Load generation: `wrk` runs and their output, the built-in keep-alive client, sign-in sampling.

use crate::stats::{r3, Summary};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Command;

#[derive(Debug, Clone, PartialEq)]
pub struct RouteResult {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// Non-2xx answers plus transport errors: a fast route that fails is not a fast route.
    pub errors: u64,
}

impl RouteResult {
    pub fn json(&self) -> Value {
        json!({"rps": r3(self.rps), "p50_ms": r3(self.p50_ms), "p99_ms": r3(self.p99_ms), "requests": self.requests, "errors": self.errors})
    }
}

/// wrk prints times as e.g. `57.00us`, `1.34ms`, `1.02s`, `2.00m`.
fn wrk_time_ms(s: &str) -> Option<f64> {
    let (num, scale) = [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0), ("h", 3_600_000.0)]
        .iter()
        .find_map(|(unit, scale)| s.strip_suffix(unit).map(|n| (n, *scale)))?;
    Some(num.parse::<f64>().ok()? * scale)
}

pub fn parse_wrk(out: &str) -> Result<RouteResult> {
    let (mut rps, mut p50, mut p99, mut requests, mut errors) = (None, None, None, None, 0u64);
    for line in out.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("Requests/sec:") => rps = words.next().and_then(|v| v.parse().ok()),
            Some("50%") => p50 = words.next().and_then(wrk_time_ms),
            Some("99%") => p99 = words.next().and_then(wrk_time_ms),
            Some(n) if line.contains(" requests in ") => requests = n.parse().ok(),
            _ if line.starts_with("Non-2xx or 3xx responses:") => {
                errors += line.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
            // "Socket errors: connect 0, read 1, write 0, timeout 3"
            _ if line.starts_with("Socket errors:") => {
                errors += line.split([' ', ',']).filter_map(|w| w.parse::<u64>().ok()).sum::<u64>();
            }
            _ => {}
        }
    }
    match (rps, p50, p99, requests) {
        (Some(rps), Some(p50_ms), Some(p99_ms), Some(requests)) => Ok(RouteResult { rps, p50_ms, p99_ms, requests, errors }),
        _ => bail!("cannot read wrk's output (was --latency passed?):\n{out}"),
    }
}

pub fn wrk_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("wrk").is_file()))
}

pub async fn install_wrk() -> Result<()> {
    for args in [&["install", "-y", "wrk"][..], &["update"], &["install", "-y", "wrk"]] {
        // apt's chatter goes to stderr so that --json keeps stdout to the one JSON line.
        let run = Command::new("apt-get").args(args).stdout(std::io::stderr()).status().await;
        let ok = run.is_ok_and(|s| s.success());
        // A stale package list is the usual reason install fails, hence update and retry.
        if ok && args[0] == "install" {
            return Ok(());
        }
    }
    bail!("`apt-get install -y wrk` failed (it needs root); install wrk yourself or use --load-gen builtin")
}

pub async fn wrk(url: &str, bearer: Option<&str>, connections: usize, secs: u64) -> Result<RouteResult> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{connections}"), &format!("-d{secs}s"), "--latency"]);
    if let Some(key) = bearer {
        cmd.arg("-H").arg(format!("Authorization: Bearer {key}"));
    }
    let out = cmd.arg(url).output().await.context("cannot run wrk")?;
    if !out.status.success() {
        bail!("wrk failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// `connections` keep-alive workers issuing requests back to back for `duration`.
pub async fn builtin(url: &str, bearer: Option<&str>, connections: usize, duration: Duration) -> Result<RouteResult> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build()?;
    let auth = bearer.map(|k| format!("Bearer {k}"));
    let start = Instant::now();
    let end = start + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, auth) = (client.clone(), url.to_owned(), auth.clone());
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::with_capacity(1 << 16), 0u64);
                while Instant::now() < end {
                    let t = Instant::now();
                    let mut req = client.get(&url);
                    if let Some(a) = &auth {
                        req = req.header("authorization", a);
                    }
                    match req.send().await {
                        Ok(resp) => {
                            let ok = resp.status().is_success() && resp.bytes().await.is_ok();
                            lat.push(t.elapsed().as_secs_f64() * 1000.0);
                            errors += u64::from(!ok);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (lat, e) = w.await?;
        all.extend(lat);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    let requests = all.len() as u64;
    let s = Summary::of(all);
    Ok(RouteResult { rps: requests as f64 / secs, p50_ms: s.median, p99_ms: s.p99, requests, errors })
}

pub struct SignIns {
    /// Latency of successful sign-ins only; 429s answer without hashing and would flatter it.
    pub latency: Summary,
    pub ok: usize,
    pub limited: usize,
    pub other: usize,
    pub wall: Duration,
}

/// `total` sign-ins spread over `concurrency` clients. A 200 without a session cookie counts
/// as `other`: it would not have signed anyone in.
pub async fn sign_ins(url: &str, email: &str, password: &str, concurrency: usize, total: usize) -> Result<SignIns> {
    let client = reqwest::Client::new();
    let body = json!({"email": email, "password": password});
    let issued = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body, issued) = (client.clone(), url.to_owned(), body.clone(), issued.clone());
            tokio::spawn(async move {
                let (mut lat, mut limited, mut other) = (Vec::new(), 0, 0);
                loop {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    // Each request claims a different client address (the server trusts this
                    // loopback proxy), so the per-IP limit does not cap what argon2 allows.
                    let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
                    let t = Instant::now();
                    match client.post(&url).header("x-forwarded-for", ip).json(&body).send().await {
                        Ok(r) if r.status() == 200 && r.headers().contains_key("set-cookie") => {
                            let _ = r.bytes().await;
                            lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        Ok(r) if r.status() == 429 => limited += 1,
                        _ => other += 1,
                    }
                }
                (lat, limited, other)
            })
        })
        .collect();
    let (mut all, mut limited, mut other) = (Vec::new(), 0, 0);
    for w in workers {
        let (l, lim, o) = w.await?;
        all.extend(l);
        limited += lim;
        other += o;
    }
    let wall = start.elapsed();
    Ok(SignIns { ok: all.len(), latency: Summary::of(all), limited, other, wall })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 2s test @ http://127.0.0.1:38124/api/me
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.63ms    1.30ms  16.15ms   90.32%
    Req/Sec    20.49k     4.98k   38.01k    90.00%
  Latency Distribution
     50%   57.00us
     75%    1.95ms
     90%    2.74ms
     99%    1.02s
  81589 requests in 2.01s, 40.77MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  40638.65
Transfer/sec:     20.31MB
";

    #[test]
    fn parses_wrk_latency_output() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r, RouteResult { rps: 40638.65, p50_ms: 0.057, p99_ms: 1020.0, requests: 81589, errors: 12 });
    }

    #[test]
    fn wrk_units_and_missing_fields() {
        assert_eq!(wrk_time_ms("2.00m"), Some(120_000.0));
        assert_eq!(wrk_time_ms("3.5ms"), Some(3.5));
        assert_eq!(wrk_time_ms("abc"), None);
        assert!(parse_wrk("Requests/sec: 10\n").is_err(), "no --latency distribution");
    }
}
