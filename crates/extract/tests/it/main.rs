//! The one integration-test binary of tale-extract.
//!
//! - `fixtures`: documents generated at test time (DOCX, PPTX, XLSX, PDF, zip bombs).
//! - `formats`: every format's text as a user would see it, heading paths, pages, labels.
//! - `hostile`: bad input comes back as the right error, with its message, within seconds.
//! - `throughput`: rough pages/s on the Rust book's HTML and a generated 200-page PDF
//!   (`cargo test --release -p tale-extract -- --nocapture throughput`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test suite: a failed step is a panic"
)]

mod fixtures;
mod formats;
mod hostile;
mod throughput;

use tale_extract::{Extracted, Format, Limits, Section, extract};

/// Extracts with default limits, panicking with the error's message on failure.
pub fn ok(format: Format, bytes: &[u8]) -> Extracted {
    match extract(&format, bytes, &Limits::default()) {
        Ok(extracted) => extracted,
        Err(error) => panic!("{format:?} failed: {error}"),
    }
}

/// All sections' text, joined.
pub fn all_text(extracted: &Extracted) -> String {
    extracted
        .sections
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The section whose text contains `needle`.
pub fn section_with<'a>(extracted: &'a Extracted, needle: &str) -> &'a Section {
    extracted
        .sections
        .iter()
        .find(|s| s.text.contains(needle))
        .unwrap_or_else(|| panic!("no section contains {needle:?}: {:#?}", extracted.sections))
}

/// The rustdoc HTML shipped with the toolchain, if installed (`rust-docs` component).
pub fn rust_docs() -> Option<std::path::PathBuf> {
    let output = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8(output.stdout).ok()?;
    let path = std::path::Path::new(sysroot.trim()).join("share/doc/rust/html");
    path.is_dir().then_some(path)
}
