//! Static assets compiled into the binary, served under `/static/` with a content hash as ETag.

pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

pub const ASSETS: &[Asset] = &[
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("assets/app.js") },
    Asset { name: "chat.js", content_type: "text/javascript; charset=utf-8", body: include_str!("assets/chat.js") },
    Asset { name: "config.js", content_type: "text/javascript; charset=utf-8", body: include_str!("assets/config.js") },
    Asset { name: "knowledge.js", content_type: "text/javascript; charset=utf-8", body: include_str!("assets/knowledge.js") },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", body: include_str!("assets/favicon.svg") },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_str!("assets/app.css") },
    Asset { name: "code.css", content_type: "text/css; charset=utf-8", body: include_str!("assets/code.css") },
];

pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}
