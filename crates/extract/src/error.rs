//! The one error type of extraction; its messages are shown to users next to the document.

/// Why a document gave no text. `Display` is written for the person who uploaded the file: it
/// says what is wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(
        "the file is encrypted (password-protected): open it, remove the password, save it and upload it again"
    )]
    Encrypted,
    #[error(
        "the PDF has no text layer (is it a scan?): run it through OCR or export it again with text, then upload it again"
    )]
    NoTextLayer,
    /// Names what is broken, e.g. "not a valid DOCX: missing word/document.xml".
    #[error(
        "{0}; the file may be damaged or incomplete: save or download it again and upload it again"
    )]
    Corrupt(String),
    /// Names the limit that was hit.
    #[error("{0}; split the document into smaller files and upload them separately")]
    TooLarge(String),
    #[error("the file is empty or contains no text to index")]
    Empty,
    #[error("{0}")]
    Unsupported(String),
}

/// Formats a byte count for a message ("512 MiB").
pub(crate) fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}
