//! The `tale` binary under test: admin commands, `serve` children, readiness and memory probes.

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub struct Tale {
    bin: PathBuf,
}

pub struct Server {
    child: Child,
    pid: u32,
    addr: String,
    log: PathBuf,
    /// From just before spawn to the first `/readyz` 200.
    pub startup: Duration,
}

impl Tale {
    pub fn new(bin: PathBuf) -> Result<Tale> {
        if !bin.is_file() {
            bail!("tale binary not found at {}: build it with `cargo build --release -p tale`", bin.display());
        }
        Ok(Tale { bin })
    }

    /// For phases that never run the binary (`quality`): it need not exist.
    pub fn unchecked(bin: PathBuf) -> Tale {
        Tale { bin }
    }

    /// Runs `tale admin ARGS` to completion and returns its stdout.
    pub async fn admin(&self, args: &[&str]) -> Result<String> {
        let run = Command::new(&self.bin).arg("admin").args(args).stdin(Stdio::null()).output().await;
        let out = run.with_context(|| format!("cannot run {}", self.bin.display()))?;
        if !out.status.success() {
            bail!("`tale admin {}` failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Spawns `tale serve` on `data_dir` and returns once `/readyz` answers 200.
    pub async fn start(&self, data_dir: &Path) -> Result<Server> {
        self.start_with_env(data_dir, &[]).await
    }

    pub async fn start_with_env(&self, data_dir: &Path, env: &[(&str, &str)]) -> Result<Server> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let log = data_dir.with_extension("log");
        let out = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let t0 = Instant::now();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve").arg("--data-dir").arg(data_dir).args(["--listen", &addr]).stdin(Stdio::null()).stdout(out).stderr(err);
        // Provider secrets in the bench's data dirs are plaintext files; an age key inherited from
        // the operator's shell must not change how they are read.
        cmd.env_remove("SOPS_AGE_KEY").env_remove("SOPS_AGE_KEY_FILE");
        cmd.envs(env.iter().copied());
        // A bench that fails half-way must not leave servers behind.
        let mut child = cmd.kill_on_drop(true).spawn().with_context(|| format!("cannot run {}", self.bin.display()))?;
        let deadline = t0 + Duration::from_secs(30);
        while !readyz(&addr).await {
            if let Some(status) = child.try_wait()? {
                bail!("tale serve exited ({status}) before /readyz answered 200; its log is {}", log.display());
            }
            if Instant::now() > deadline {
                bail!("tale serve not ready after 30 s; its log is {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let startup = t0.elapsed();
        let pid = child.id().ok_or_else(|| anyhow!("tale serve exited right after becoming ready"))?;
        Ok(Server { child, pid, addr, log, startup })
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// (VmRSS, VmHWM) in MiB.
    pub fn memory(&self) -> Result<(f64, f64)> {
        let path = format!("/proc/{}/status", self.pid);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path} (Linux only)"))?;
        parse_status(&text).ok_or_else(|| anyhow!("no VmRSS/VmHWM in {path}"))
    }

    /// SIGTERM like an operator or systemd would; a shutdown that hangs is reported and killed so
    /// one bad run cannot stall the rest.
    pub async fn stop(mut self) {
        let term = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status().await;
        if !term.is_ok_and(|s| s.success()) {
            let _ = self.child.start_kill();
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            eprintln!("warning: tale serve (pid {}) ignored SIGTERM for 10 s, killing it; see {}", self.pid, self.log.display());
            let _ = self.child.kill().await;
        }
    }
}

/// One readiness probe on a fresh connection, as a load balancer would make it.
async fn readyz(addr: &str) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response.starts_with(b"HTTP/1.1 200"))
    };
    matches!(tokio::time::timeout(Duration::from_millis(250), probe).await, Ok(Ok(true)))
}

/// The kernel picks a free port; releasing it before tale binds is a small race we accept.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn parse_status(text: &str) -> Option<(f64, f64)> {
    let kib = |key: &str| {
        let line = text.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].split_whitespace().next()?.parse::<f64>().ok()
    };
    Some((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_rss_and_hwm_in_mib() {
        let status = "Name:\ttale\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(super::parse_status(status), Some((10.0, 20.0)));
        assert_eq!(super::parse_status("Name:\tx\n"), None);
    }
}
