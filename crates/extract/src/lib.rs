//! Turns uploaded documents into sections of Markdown-flavoured text for the knowledge base.
//!
//! One entry point per step: [`detect`] names the format from the file name, the declared media
//! type and the first bytes; [`extract`] turns the bytes into an [`Extracted`] document whose
//! [`Section`]s carry the heading path, PDF page or slide number and a label, ready to be chunked,
//! indexed and embedded. Every format lives in its own module; they share the section builder
//! (`sections`), text clean-up (`text`) and the bounded zip reader (`package`).
//!
//! Safety against hostile input: zip members are counted while they inflate and stop at
//! [`Limits::max_unpacked_bytes`], PDFs stop at [`Limits::max_pages`], and every parser runs under
//! `catch_unwind` so a panic in a third-party crate becomes [`ExtractError::Corrupt`] rather than
//! a crashed worker. This relies on the default `panic = "unwind"`.

mod data;
mod detect;
mod docx;
mod error;
mod html;
mod html_raw;
mod markdown;
mod ooxml;
mod package;
mod pdf;
mod pdf_text;
mod plain;
mod pptx;
mod sections;
mod sheet;
mod text;

use std::panic::{AssertUnwindSafe, catch_unwind};

pub use detect::detect;
pub use error::ExtractError;

/// A document format that [`extract`] understands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Format {
    Pdf,
    Docx,
    Pptx,
    /// xlsx, xlsm, xlsb, xls and ods, read with calamine.
    Spreadsheet,
    Csv,
    Html,
    Markdown,
    Text,
    Json,
    Yaml,
    /// Source code; `language` is the fence info string (`rust`, `python`, ...).
    Code {
        language: String,
    },
}

impl Format {
    /// A short name for messages ("PDF", "DOCX", ...).
    pub fn name(&self) -> &str {
        match self {
            Format::Pdf => "PDF",
            Format::Docx => "DOCX",
            Format::Pptx => "PPTX",
            Format::Spreadsheet => "spreadsheet",
            Format::Csv => "CSV",
            Format::Html => "HTML",
            Format::Markdown => "Markdown",
            Format::Text => "text",
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Code { .. } => "source code",
        }
    }
}

/// Bounds that keep one hostile document from exhausting memory or time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes that the members of a zip container (DOCX, PPTX, XLSX, ODS) may inflate to,
    /// and the bound on any single decompressed PDF stream.
    pub max_unpacked_bytes: u64,
    /// PDF pages (and PPTX slides) read at most; a longer document is refused as too large.
    pub max_pages: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_unpacked_bytes: 512 * 1024 * 1024,
            max_pages: 5_000,
        }
    }
}

/// An extracted document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The document's own title (PDF/Office metadata, HTML `<title>`, first `# ` heading).
    pub title: Option<String>,
    /// The text in reading order; never empty when extraction succeeds.
    pub sections: Vec<Section>,
}

/// One run of text under the same headings (and on the same page or slide).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// Headings above this text, outermost first (e.g. ["Error handling", "Recoverable errors"]).
    pub heading_path: Vec<String>,
    /// 1-based PDF page, PPTX slide number; None otherwise.
    pub page: Option<u32>,
    /// A label for non-heading structure: "Sheet: Q3", "Slide 4".
    pub label: Option<String>,
    /// The text, Markdown-flavoured: paragraphs separated by blank lines, lists as "- ", tables
    /// as Markdown tables (header row, one row per line), code as fenced blocks (so a
    /// Markdown-aware splitter keeps them whole).
    pub text: String,
}

/// Extracts the text of a document of the given format.
///
/// Never panics and never runs unbounded: bad input comes back as an [`ExtractError`] whose
/// message can be shown to the user as it is.
pub fn extract(format: &Format, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ExtractError::Empty);
    }
    if bytes.len() as u64 > limits.max_unpacked_bytes {
        return Err(ExtractError::TooLarge(format!(
            "the file is larger than {}, the limit for one document",
            error::human_bytes(limits.max_unpacked_bytes)
        )));
    }
    let run = || match format {
        Format::Pdf => pdf::extract(bytes, limits),
        Format::Docx => docx::extract(bytes, limits),
        Format::Pptx => pptx::extract(bytes, limits),
        Format::Spreadsheet => sheet::extract_workbook(bytes, limits),
        Format::Csv => sheet::extract_csv(bytes),
        Format::Html => html::extract(bytes),
        Format::Markdown => markdown::extract(bytes),
        Format::Text => plain::extract_text(bytes),
        Format::Json => data::extract_json(bytes),
        Format::Yaml => data::extract_yaml(bytes),
        Format::Code { language } => plain::extract_code(bytes, language),
    };
    // Parsers of binary formats are large and occasionally panic on malformed input (index out
    // of bounds, unwraps on "impossible" states); one bad upload must not take the worker down.
    let extracted = catch_unwind(AssertUnwindSafe(run)).map_err(|_| {
        ExtractError::Corrupt(format!(
            "the {} could not be read (its structure is malformed)",
            format.name()
        ))
    })??;
    let sections: Vec<Section> = extracted
        .sections
        .into_iter()
        .filter(|section| !section.text.trim().is_empty())
        .collect();
    if sections.is_empty() {
        return Err(ExtractError::Empty);
    }
    Ok(Extracted {
        title: extracted.title.filter(|title| !title.trim().is_empty()),
        sections,
    })
}
