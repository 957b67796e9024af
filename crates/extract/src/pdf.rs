//! PDF: loaded with lopdf (pure Rust, maintained, bounded stream decompression, decrypts files
//! whose user password is empty); text comes from our own content-stream reader in
//! `pdf_text`, one section per page with its 1-based page number.

use lopdf::{Document, LoadOptions, Object};

use crate::error::human_bytes;
use crate::pdf_text::PageReader;
use crate::sections::SectionBuilder;
use crate::{ExtractError, Extracted, Limits};

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    if !bytes[..bytes.len().min(1024)]
        .windows(5)
        .any(|w| w == b"%PDF-")
    {
        return Err(ExtractError::Corrupt(
            "not a valid PDF: the file does not start like a PDF".to_string(),
        ));
    }
    let stream_limit = usize::try_from(limits.max_unpacked_bytes).unwrap_or(usize::MAX);
    let options = LoadOptions {
        max_decompressed_size: Some(stream_limit),
        ..LoadOptions::default()
    };
    let document = Document::load_mem_with_options(bytes, options)
        .map_err(|error| load_error(&error, limits))?;
    // lopdf opens files whose user password is empty (owner-only restrictions: every viewer
    // opens them without asking) and leaves the rest encrypted without objects.
    if document.trailer.has(b"Encrypt") && document.encryption_state.is_none() {
        return Err(ExtractError::Encrypted);
    }
    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(ExtractError::Corrupt(
            "not a valid PDF: it has no readable pages".to_string(),
        ));
    }
    if pages.len() > limits.max_pages as usize {
        return Err(ExtractError::TooLarge(format!(
            "the PDF has {} pages, more than the {} allowed",
            pages.len(),
            limits.max_pages
        )));
    }
    let mut reader = PageReader::new(&document, stream_limit);
    let mut builder = SectionBuilder::new();
    let mut failed = 0usize;
    let mut first_error = None;
    for (&number, &page_id) in &pages {
        match reader.page_text(page_id) {
            Ok(text) => {
                builder.place(Some(number), None);
                builder.block(&text);
            }
            Err(lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded {
                ..
            })) => {
                return Err(too_large_stream(limits));
            }
            // One damaged page does not lose the others.
            Err(error) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    let sections = builder.finish();
    if sections.is_empty() {
        return Err(match first_error {
            Some(error) if failed == pages.len() => {
                ExtractError::Corrupt(format!("not a valid PDF: no page could be read ({error})"))
            }
            _ => ExtractError::NoTextLayer,
        });
    }
    Ok(Extracted {
        title: info_title(&document),
        sections,
    })
}

fn load_error(error: &lopdf::Error, limits: &Limits) -> ExtractError {
    match error {
        lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. }) => {
            too_large_stream(limits)
        }
        lopdf::Error::InvalidPassword | lopdf::Error::Decryption(_) => ExtractError::Encrypted,
        other => ExtractError::Corrupt(format!("not a valid PDF: {other}")),
    }
}

fn too_large_stream(limits: &Limits) -> ExtractError {
    ExtractError::TooLarge(format!(
        "the PDF's content unpacks to more than {}, the limit for one document",
        human_bytes(limits.max_unpacked_bytes)
    ))
}

/// `/Title` from the document information dictionary.
fn info_title(document: &Document) -> Option<String> {
    let info = match document.trailer.get(b"Info").ok()? {
        Object::Reference(id) => document.get_dictionary(*id).ok()?,
        Object::Dictionary(dict) => dict,
        _ => return None,
    };
    let title = lopdf::decode_text_string(info.get(b"Title").ok()?).ok()?;
    let title = crate::text::one_line(&title);
    (!title.is_empty()).then_some(title)
}
