//! Structure-aware chunking (TALE-COMPAT §6.2): each section's Markdown-flavoured text is split
//! at headings, paragraphs, list items and code-block boundaries into chunks of at most
//! `size` characters with `overlap` characters carried over, and each chunk carries a context
//! header (`document title › section path`) that is indexed with it. Chunks under 10 characters
//! are dropped. The reference uses the Python binding of the same `text-splitter` crate.

use sha2::{Digest, Sha256};
use text_splitter::{ChunkConfig, MarkdownSplitter};

/// The reference's defaults (`RAG_CHUNK_SIZE`, `RAG_CHUNK_OVERLAP`).
pub const DEFAULT_SIZE: usize = 2048;
pub const DEFAULT_OVERLAP: usize = 200;
const MIN_CHARS: usize = 10;

/// A piece of a document as extraction produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct SectionText<'a> {
    pub heading_path: &'a [String],
    pub page: Option<u32>,
    pub label: Option<&'a str>,
    pub text: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Order within the document, from 0.
    pub position: u32,
    pub page: Option<u32>,
    /// The section path (`Heading › Subheading`, or the label), possibly empty.
    pub section: String,
    /// `title › section`, indexed with the text so a chunk is found by its context.
    pub header: String,
    pub text: String,
    /// SHA-256 of header and text: unchanged chunks are never embedded again.
    pub content_hash: String,
}

/// The overlap is capped at half the size, as the reference does.
pub fn chunk(title: &str, sections: &[SectionText], size: usize, overlap: usize) -> Vec<Chunk> {
    let size = size.max(2 * MIN_CHARS);
    let overlap = overlap.min(size / 2);
    let config = match ChunkConfig::new(size).with_overlap(overlap) {
        Ok(c) => c,
        Err(_) => ChunkConfig::new(size),
    };
    let splitter = MarkdownSplitter::new(config);
    let mut out = Vec::new();
    for s in sections {
        let mut path: Vec<&str> = s.heading_path.iter().map(String::as_str).collect();
        if let Some(l) = s.label {
            path.push(l);
        }
        let section = path.join(" › ");
        let header = match (title.is_empty(), section.is_empty()) {
            (false, false) => format!("{title} › {section}"),
            (false, true) => title.to_owned(),
            (true, _) => section.clone(),
        };
        for piece in splitter.chunks(s.text) {
            let text = piece.trim();
            if text.chars().count() < MIN_CHARS {
                continue;
            }
            let mut hasher = Sha256::new();
            hasher.update(header.as_bytes());
            hasher.update([0]);
            hasher.update(text.as_bytes());
            out.push(Chunk {
                position: u32::try_from(out.len()).unwrap_or(u32::MAX),
                page: s.page,
                section: section.clone(),
                header: header.clone(),
                text: text.to_owned(),
                content_hash: hex::encode(hasher.finalize()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sections_become_bounded_chunks_with_headers() {
        let path = vec!["Error handling".to_owned(), "Recoverable errors".to_owned()];
        let long: String = (0..400).map(|i| format!("Sentence number {i} explains errors. ")).collect();
        let text = format!("{long}\n\n```rust\nfn main() {{}}\n```\n\nshort");
        let sections = [
            SectionText { heading_path: &path, page: Some(3), label: None, text: &text },
            SectionText { heading_path: &[], page: None, label: Some("Sheet: Q3"), text: "tiny" },
        ];
        let chunks = chunk("The Book", &sections, 500, 100);
        assert!(chunks.len() > 10);
        assert!(chunks.iter().all(|c| c.text.chars().count() <= 500));
        assert_eq!(chunks[0].header, "The Book › Error handling › Recoverable errors");
        assert_eq!(chunks[0].page, Some(3));
        assert!(chunks.iter().enumerate().all(|(i, c)| c.position as usize == i));
        assert!(chunks.iter().all(|c| c.section != "Sheet: Q3"), "chunks under 10 characters are dropped");
        // Overlap: the start of each chunk repeats the end of the one before.
        let (a, b) = (&chunks[0].text, &chunks[1].text);
        let tail: String = a.chars().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
        assert!(b.contains(tail.trim()), "overlap carried over");
        assert_ne!(chunks[0].content_hash, chunks[1].content_hash);
        assert_eq!(chunk("The Book", &sections, 500, 100)[0].content_hash, chunks[0].content_hash, "hashes are stable");
    }

    #[test]
    fn code_blocks_stay_whole_when_they_fit() {
        let intro = "An introduction that is long enough to need its own chunk. ".repeat(4);
        let code = format!("{intro}\n\n```rust\n{}\n```\n\n{intro}", "let x = 1;\n".repeat(20));
        let sections = [SectionText { heading_path: &[], page: None, label: None, text: &code }];
        let chunks = chunk("", &sections, 300, 0);
        assert!(chunks.iter().any(|c| c.text.starts_with("```rust") && c.text.ends_with("```")), "{chunks:#?}");
    }
}
