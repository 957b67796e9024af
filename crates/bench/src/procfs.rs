//! CPU time from /proc (Linux): a process's user + system time (`/proc/<pid>/stat`, all its threads, live and exited), and every other process's, so a report can say how much of the shared CPUs other work took.

use anyhow::{anyhow, Context, Result};
use std::sync::OnceLock;

/// Clock ticks per second (`getconf CLK_TCK`, 100 on nearly every Linux). The figures that use it
/// span seconds of CPU, so the 10 ms resolution costs at most a few percent.
fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// utime + stime in ticks. The command name (field 2) may hold spaces and parentheses, so fields
/// are counted from the last `)`: after it come state (3), ..., utime (14) and stime (15).
fn ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU seconds used so far by `pid`, or by the bench itself for `None`.
pub fn cpu_secs(pid: Option<u32>) -> Result<f64> {
    let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path} (Linux only)"))?;
    let t = ticks(&text).ok_or_else(|| anyhow!("no utime/stime in {path}"))?;
    Ok(t as f64 / clk_tck())
}

/// utime + stime and cutime + cstime (children waited for) in ticks, fields 14-17.
fn own_and_children(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(4).map(|v| v.parse().unwrap_or(0)).collect();
    (f.len() == 4).then(|| (f[0] + f[1], f[2] + f[3]))
}

/// Every other process's CPU ticks (own, reaped children) by pid. `/proc/stat` cannot serve here:
/// its busy time is sampled at timer ticks and misses the short bursts a streaming server works
/// in, while a process's utime/stime are scaled to its exact run time.
fn others(exclude: &[u32]) -> Vec<(u32, u64, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !exclude.contains(pid))
        .filter_map(|pid| {
            let (own, children) = own_and_children(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
            Some((pid, own, children))
        })
        .collect()
}

/// Ticks other processes used between two [`others`] readings: what each live one used, plus
/// what the ones that ended used (their time moves into their parent's children count, such as
/// a compiler's into cargo's), plus the own time of any process that started in between.
fn others_delta(before: &[(u32, u64, u64)], after: &[(u32, u64, u64)]) -> u64 {
    let old: std::collections::HashMap<u32, (u64, u64)> = before.iter().map(|&(p, o, c)| (p, (o, c))).collect();
    after
        .iter()
        .map(|&(pid, own, children)| match old.get(&pid) {
            Some(&(o, c)) => own.saturating_sub(o) + children.saturating_sub(c),
            // New since the first reading: its own time only, since a process that was missed
            // by the first scan (it raced with it) would otherwise bring its whole history.
            None => own,
        })
        .sum()
}

/// Server, bench and everyone else's CPU at one instant, so a window's ends are read together.
#[derive(Debug, Clone, Default)]
pub struct Cpu {
    pub server: f64,
    pub bench: f64,
    others: Vec<(u32, u64, u64)>,
    pub at_ns: u64,
}

/// CPU seconds spent between two [`Cpu`] readings, and the wall time between them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub server: f64,
    pub bench: f64,
    /// Other processes and kernel threads: another engineer's build, say.
    pub others: f64,
    pub wall: f64,
}

impl Window {
    /// Seconds of CPU as a number of cores kept busy over the window.
    pub fn cores(&self, secs: f64) -> f64 {
        if self.wall > 0.0 { secs / self.wall } else { 0.0 }
    }

    pub fn json(&self) -> serde_json::Value {
        use crate::stats::r3;
        serde_json::json!({
            "wall_s": r3(self.wall), "server_cores": r3(self.cores(self.server)), "bench_cores": r3(self.cores(self.bench)),
            "other_cores": r3(self.cores(self.others)),
        })
    }

    /// "server 0.62, bench 0.31, other processes 0.05 cores (of 2)".
    pub fn describe(&self) -> String {
        format!(
            "server {:.2}, bench {:.2}, other processes {:.2} cores (of {})",
            self.cores(self.server),
            self.cores(self.bench),
            self.cores(self.others),
            std::thread::available_parallelism().map_or(0, |p| p.get())
        )
    }
}

impl Cpu {
    pub fn now(server_pid: u32) -> Result<Cpu> {
        Ok(Cpu {
            server: cpu_secs(Some(server_pid))?,
            bench: cpu_secs(None)?,
            others: others(&[server_pid, std::process::id()]),
            at_ns: crate::upstream::now_ns(),
        })
    }

    pub fn until(&self, later: &Cpu) -> Window {
        let wall = later.at_ns.saturating_sub(self.at_ns) as f64 / 1e9;
        let mut w = Window {
            server: later.server - self.server,
            bench: later.bench - self.bench,
            others: others_delta(&self.others, &later.others) as f64 / clk_tck(),
            wall,
        };
        // Rounding to ticks and pid reuse can overshoot; no window holds more than every CPU.
        let cpus = std::thread::available_parallelism().map_or(1, |p| p.get()) as f64;
        w.others = w.others.min((cpus * wall - w.server - w.bench).max(0.0));
        w
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_utime_and_stime_past_odd_command_names() {
        let stat = "4242 (tale (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 0 0 20 0 9 0 123 0 0";
        assert_eq!(super::ticks(stat), Some(175));
        assert_eq!(super::ticks("1 (x) S 1"), None);
        assert!(super::cpu_secs(None).is_ok_and(|s| s >= 0.0));
        assert_eq!(super::own_and_children("1 (x) S 1 1 1 0 -1 0 9 0 0 0 150 25 7 3 20"), Some((175, 10)));
        let before = [(1, 100, 10), (2, 50, 0), (3, 5, 0)];
        let after = [(1, 120, 40), (2, 50, 0), (4, 7, 1)];
        assert_eq!(super::others_delta(&before, &after), 20 + 30 + 7, "live ones, reaped children, newcomers' own time");
    }
}
