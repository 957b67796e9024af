//! Shared request state: the services, the typed config, metrics and trusted-proxy matching.

use crate::metrics::Metrics;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tale_core::config::Config;
use tale_core::service::Services;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub services: Arc<Services>,
    /// Threads, turns, live answers, uploads, agent and provider editing.
    pub chat: Arc<tale_chat::ChatService>,
    /// Documents, chunks, the BM25 index and the ingestion queue.
    pub knowledge: Arc<tale_knowledge::ingest::Knowledge>,
    /// Providers and agents from the config directory, reloaded when files change.
    pub catalog: Arc<tale_agent::catalog::Catalog>,
    /// Identities for SOPS-encrypted provider secrets (`SOPS_AGE_KEY` / `SOPS_AGE_KEY_FILE`).
    pub age_keys: tale_secrets::AgeKeys,
    /// `openai:chat`: 30 requests per minute per client address (TALE-COMPAT §9.2).
    pub chat_limiter: tale_core::service::RateLimiter,
    pub config: Arc<Config>,
    pub metrics: Metrics,
    trusted: Vec<ProxyRule>,
    draining: AtomicBool,
    closing: tokio::sync::watch::Sender<bool>,
    /// Serialised audit pages by (org, filter), tagged with the cache generation they were
    /// computed at; large pages cost more to serialise than to look up.
    pub audit_pages: std::sync::Mutex<std::collections::HashMap<String, (u64, axum::body::Bytes)>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        services: Arc<Services>,
        config: Arc<Config>,
        chat: Arc<tale_chat::ChatService>,
        knowledge: Arc<tale_knowledge::ingest::Knowledge>,
    ) -> Result<Self, String> {
        let trusted = config.trusted_proxies.iter().map(|s| ProxyRule::parse(s)).collect::<Result<_, _>>()?;
        let (closing, _) = tokio::sync::watch::channel(false);
        Ok(AppState(Arc::new(Inner {
            services,
            catalog: chat.catalog.clone(),
            age_keys: chat.age_keys.clone(),
            chat,
            knowledge,
            chat_limiter: tale_core::service::RateLimiter::new(30, std::time::Duration::from_secs(60)),
            config,
            metrics: Metrics::new(),
            trusted,
            draining: AtomicBool::new(false),
            closing,
            audit_pages: std::sync::Mutex::new(std::collections::HashMap::new()),
        })))
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|r| r.matches(ip))
    }

    /// Marks the server as shutting down: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        let _ = self.closing.send(true);
    }

    /// Resolves when the server starts shutting down; long-lived connections close on it.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// One entry of the trusted-proxy list: an address, a CIDR block, or a keyword.
#[derive(Debug, Clone)]
enum ProxyRule {
    Net(IpAddr, u8),
    Loopback,
    UniqueLocal,
    LinkLocal,
}

impl ProxyRule {
    fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "loopback" => return Ok(ProxyRule::Loopback),
            "uniquelocal" => return Ok(ProxyRule::UniqueLocal),
            "linklocal" => return Ok(ProxyRule::LinkLocal),
            _ => {}
        }
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| format!("trusted proxy '{s}' is not an IP, CIDR or keyword"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| format!("trusted proxy '{s}' has a bad prefix length"))?,
            None => max,
        };
        Ok(ProxyRule::Net(ip, bits))
    }

    fn matches(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (ProxyRule::Loopback, ip) => ip.is_loopback(),
            (ProxyRule::UniqueLocal, IpAddr::V4(v4)) => v4.is_private(),
            (ProxyRule::UniqueLocal, IpAddr::V6(v6)) => (v6.segments()[0] & 0xfe00) == 0xfc00,
            (ProxyRule::LinkLocal, IpAddr::V4(v4)) => v4.is_link_local(),
            (ProxyRule::LinkLocal, IpAddr::V6(v6)) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            (ProxyRule::Net(IpAddr::V4(net), bits), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), *bits),
            (ProxyRule::Net(IpAddr::V6(net), bits), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), *bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn proxy_rules_match() {
        let r = ProxyRule::parse("10.1.0.0/16").unwrap();
        assert!(r.matches("10.1.200.3".parse().unwrap()));
        assert!(!r.matches("10.2.0.1".parse().unwrap()));
        assert!(ProxyRule::parse("loopback").unwrap().matches("::1".parse().unwrap()));
        assert!(ProxyRule::parse("fd00::/8").unwrap().matches("fd12::1".parse().unwrap()));
        assert!(ProxyRule::parse("nonsense").is_err());
        assert!(ProxyRule::parse("10.0.0.0/33").is_err());
    }
}
