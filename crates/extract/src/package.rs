//! The bounded reader for zip containers (DOCX, PPTX, and the pre-check of XLSX/ODS): members
//! are counted while they inflate, so a zip bomb stops at `max_unpacked_bytes` instead of
//! filling memory.

use std::io::{Cursor, Read};

use zip::ZipArchive;
use zip::result::ZipError;

use crate::error::{ExtractError, human_bytes};

/// The first bytes of an OLE compound file: legacy Office (.doc/.xls/.ppt) and, with an
/// OOXML extension, an Office document saved with a password (Office encrypts the whole
/// package into an OLE container).
pub(crate) const OLE_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

/// More entries than any real Office document has; a central directory claiming more is an
/// attack on time rather than memory.
const MAX_ENTRIES: usize = 100_000;

/// A zip container opened for reading with a budget of unpacked bytes shared by all members.
pub(crate) struct Package<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    kind: &'static str,
    limit: u64,
    remaining: u64,
}

impl<'a> Package<'a> {
    /// Opens `bytes` as the zip container of a `kind` document ("DOCX", "PPTX", ...).
    pub(crate) fn open(
        bytes: &'a [u8],
        kind: &'static str,
        limit: u64,
    ) -> Result<Self, ExtractError> {
        if bytes.starts_with(OLE_MAGIC) {
            return Err(ExtractError::Encrypted);
        }
        if !bytes.starts_with(b"PK") {
            return Err(ExtractError::Corrupt(format!(
                "not a valid {kind}: the file is not a zip container, which every {kind} is"
            )));
        }
        let archive =
            ZipArchive::new(Cursor::new(bytes)).map_err(|error| zip_error(kind, &error))?;
        if archive.len() > MAX_ENTRIES {
            return Err(ExtractError::TooLarge(format!(
                "the {kind} holds {} files, more than the {MAX_ENTRIES} allowed",
                archive.len()
            )));
        }
        // The central directory's sizes can lie, so this only refuses the obvious case early;
        // `read` counts the real bytes.
        if archive
            .decompressed_size()
            .is_some_and(|size| size > u128::from(limit))
        {
            return Err(too_large(kind, limit));
        }
        Ok(Self {
            archive,
            kind,
            limit,
            remaining: limit,
        })
    }

    /// The names of all members.
    pub(crate) fn names(&self) -> Vec<String> {
        self.archive
            .file_names()
            .filter_map(Result::ok)
            .map(|name| name.into_owned())
            .collect()
    }

    /// Reads a member as text, or `None` if it does not exist. Counts its inflated bytes
    /// against the budget.
    pub(crate) fn read_text(&mut self, name: &str) -> Result<Option<String>, ExtractError> {
        let Some(bytes) = self.read(name)? else {
            return Ok(None);
        };
        Ok(Some(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => crate::text::decode(error.as_bytes()).into_owned(),
        }))
    }

    /// Reads a member's bytes, or `None` if it does not exist.
    pub(crate) fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let kind = self.kind;
        let mut file = match self.archive.by_name(name) {
            Ok(file) => file,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(error) => return Err(zip_error(kind, &error)),
        };
        if file.size() > self.remaining {
            return Err(too_large(kind, self.limit));
        }
        // The declared size is a hint only; `take` enforces the budget on what really inflates.
        let capacity = usize::try_from(file.size().min(64 * 1024 * 1024)).unwrap_or(0);
        let mut out = Vec::with_capacity(capacity);
        (&mut file)
            .take(self.remaining.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|error| damaged(kind, name, &error))?;
        let read = out.len() as u64;
        if read > self.remaining {
            return Err(too_large(kind, self.limit));
        }
        self.remaining -= read;
        Ok(Some(out))
    }

    /// Inflates every member without keeping it, to check that the whole container fits the
    /// budget before handing it to a parser that reads members unbounded (calamine).
    pub(crate) fn check_all(&mut self) -> Result<(), ExtractError> {
        let kind = self.kind;
        for index in 0..self.archive.len() {
            let mut file = self
                .archive
                .by_index(index)
                .map_err(|error| zip_error(kind, &error))?;
            let name = file.name().map(|n| n.into_owned()).unwrap_or_default();
            if file.size() > self.remaining {
                return Err(too_large(kind, self.limit));
            }
            let read = std::io::copy(
                &mut (&mut file).take(self.remaining.saturating_add(1)),
                &mut std::io::sink(),
            )
            .map_err(|error| damaged(kind, &name, &error))?;
            if read > self.remaining {
                return Err(too_large(kind, self.limit));
            }
            self.remaining -= read;
        }
        Ok(())
    }
}

fn too_large(kind: &str, limit: u64) -> ExtractError {
    ExtractError::TooLarge(format!(
        "the {kind} unpacks to more than {}, the limit for one document (it may be a zip bomb)",
        human_bytes(limit)
    ))
}

fn damaged(kind: &str, name: &str, error: &std::io::Error) -> ExtractError {
    ExtractError::Corrupt(format!(
        "not a valid {kind}: its part {name} cannot be unpacked ({error})"
    ))
}

fn zip_error(kind: &str, error: &ZipError) -> ExtractError {
    match error {
        ZipError::UnsupportedArchive(message)
            if message.to_ascii_lowercase().contains("password") =>
        {
            ExtractError::Encrypted
        }
        ZipError::InvalidPassword => ExtractError::Encrypted,
        ZipError::UnsupportedArchive(message) => ExtractError::Unsupported(format!(
            "this {kind} uses a zip feature that cannot be read: {message}"
        )),
        ZipError::CompressionMethodNotSupported(method) => ExtractError::Unsupported(format!(
            "this {kind} uses zip compression method {method}, which cannot be read; save it again with the usual settings"
        )),
        ZipError::DecompressedSizeLimitExceeded { limit, .. } => too_large(kind, *limit),
        _ => ExtractError::Corrupt(format!(
            "not a valid {kind}: its zip structure is broken or the file is cut short ({error})"
        )),
    }
}
