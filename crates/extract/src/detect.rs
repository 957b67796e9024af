//! Format detection from the file name, the declared media type and the first bytes. Magic
//! numbers win where a wrong name would break extraction (a PDF named `.txt`, a DOCX named
//! `.zip`); binary content is never taken for text.

use crate::Format;
use crate::package::OLE_MAGIC;

/// From the file name's extension, the declared media type and the first bytes (magic numbers
/// win over a lying extension where it matters, e.g. a PDF named .txt). `None` when the format
/// is not one that can be extracted (images, archives, legacy .doc/.ppt, unknown binaries).
pub fn detect(file_name: &str, media_type: Option<&str>, head: &[u8]) -> Option<Format> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let extension = base
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    let by_name = from_name(base, &extension);
    let media = media_type.map(|m| m.split(';').next().unwrap_or(m).trim().to_ascii_lowercase());
    let by_media = media.as_deref().and_then(from_media_type);

    // Signatures first: these formats cannot be read as anything else.
    if find(&head[..head.len().min(1024)], b"%PDF-").is_some() {
        return Some(Format::Pdf);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return zip_format(&by_name, &by_media, head);
    }
    if head.starts_with(OLE_MAGIC) {
        // Legacy .xls, or an OOXML file saved with a password (extraction reports that).
        return match by_name.or(by_media) {
            Some(format @ (Format::Spreadsheet | Format::Docx | Format::Pptx)) => Some(format),
            _ if extension == "xls" => Some(Format::Spreadsheet),
            _ => None,
        };
    }
    if is_binary(head) {
        return None;
    }
    if let Some(format) = by_name {
        // Office formats and PDFs were matched by signature above; a name that claims one over
        // text content is still handed on, so extraction says what is wrong with the file.
        return Some(format);
    }
    if let Some(format) = by_media.filter(|f| *f != Format::Text) {
        return Some(format);
    }
    Some(sniff_text(head).unwrap_or(Format::Text))
}

fn zip_format(by_name: &Option<Format>, by_media: &Option<Format>, head: &[u8]) -> Option<Format> {
    for candidate in [by_name, by_media] {
        if let Some(format @ (Format::Docx | Format::Pptx | Format::Spreadsheet)) = candidate {
            return Some(format.clone());
        }
    }
    // The first member names are in the head: ODF starts with an uncompressed `mimetype`,
    // OOXML writers usually put a `word/`, `ppt/` or `xl/` part early.
    if find(head, b"application/vnd.oasis.opendocument.spreadsheet").is_some()
        || find(head, b"xl/").is_some()
    {
        return Some(Format::Spreadsheet);
    }
    if find(head, b"word/").is_some() {
        return Some(Format::Docx);
    }
    if find(head, b"ppt/").is_some() {
        return Some(Format::Pptx);
    }
    None
}

fn from_name(base: &str, extension: &str) -> Option<Format> {
    let lower = base.to_ascii_lowercase();
    let code = |language: &str| {
        Some(Format::Code {
            language: language.to_string(),
        })
    };
    match lower.as_str() {
        "dockerfile" | "containerfile" => return code("dockerfile"),
        "makefile" | "gnumakefile" => return code("makefile"),
        "cmakelists.txt" => return code("cmake"),
        _ => {}
    }
    match extension {
        "pdf" => Some(Format::Pdf),
        "docx" | "docm" | "dotx" => Some(Format::Docx),
        "pptx" | "pptm" | "potx" | "ppsx" => Some(Format::Pptx),
        "xlsx" | "xlsm" | "xlsb" | "xls" | "xla" | "xlam" | "ods" => Some(Format::Spreadsheet),
        "csv" | "tsv" => Some(Format::Csv),
        "html" | "htm" | "xhtml" => Some(Format::Html),
        "md" | "markdown" | "mdown" | "mkd" | "mdx" => Some(Format::Markdown),
        "txt" | "text" | "log" | "rst" | "adoc" | "asciidoc" | "org" | "tex" => Some(Format::Text),
        "json" | "jsonl" | "ndjson" | "geojson" | "ipynb" => Some(Format::Json),
        "yaml" | "yml" => Some(Format::Yaml),
        _ => language(extension).map(|language| Format::Code {
            language: language.to_string(),
        }),
    }
}

/// The fence language for a source file extension.
fn language(extension: &str) -> Option<&'static str> {
    Some(match extension {
        "rs" => "rust",
        "py" | "pyi" => "python",
        "js" | "mjs" | "cjs" => "javascript",
        "jsx" => "jsx",
        "ts" | "mts" | "cts" => "typescript",
        "tsx" => "tsx",
        "go" => "go",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "scala" => "scala",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => "cpp",
        "cs" => "csharp",
        "fs" | "fsx" => "fsharp",
        "rb" => "ruby",
        "php" => "php",
        "swift" => "swift",
        "m" | "mm" => "objectivec",
        "sh" | "bash" | "zsh" => "bash",
        "fish" => "fish",
        "ps1" => "powershell",
        "sql" => "sql",
        "r" => "r",
        "jl" => "julia",
        "lua" => "lua",
        "pl" | "pm" => "perl",
        "hs" => "haskell",
        "ml" | "mli" => "ocaml",
        "ex" | "exs" => "elixir",
        "erl" | "hrl" => "erlang",
        "clj" | "cljs" | "edn" => "clojure",
        "dart" => "dart",
        "zig" => "zig",
        "nim" => "nim",
        "vue" => "vue",
        "svelte" => "svelte",
        "css" => "css",
        "scss" | "sass" => "scss",
        "less" => "less",
        "xml" | "xsd" | "xsl" | "svg" | "plist" => "xml",
        "toml" => "toml",
        "ini" | "cfg" | "conf" => "ini",
        "proto" => "protobuf",
        "graphql" | "gql" => "graphql",
        "tf" | "hcl" => "hcl",
        "nix" => "nix",
        "cmake" => "cmake",
        "gradle" => "groovy",
        "groovy" => "groovy",
        "dockerfile" => "dockerfile",
        "sol" => "solidity",
        "asm" | "s" => "asm",
        _ => return None,
    })
}

fn from_media_type(media: &str) -> Option<Format> {
    Some(match media {
        "application/pdf" => Format::Pdf,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => Format::Docx,
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => Format::Pptx,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-excel.sheet.macroenabled.12"
        | "application/vnd.ms-excel.sheet.binary.macroenabled.12"
        | "application/vnd.oasis.opendocument.spreadsheet" => Format::Spreadsheet,
        "text/csv" | "text/tab-separated-values" => Format::Csv,
        "text/html" | "application/xhtml+xml" => Format::Html,
        "text/markdown" | "text/x-markdown" => Format::Markdown,
        "application/json" | "application/x-ndjson" | "application/ld+json" => Format::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => Format::Yaml,
        "text/plain" => Format::Text,
        "text/x-python" | "text/x-script.python" => Format::Code {
            language: "python".to_string(),
        },
        "text/javascript" | "application/javascript" => Format::Code {
            language: "javascript".to_string(),
        },
        "text/x-rust" => Format::Code {
            language: "rust".to_string(),
        },
        _ => return None,
    })
}

/// Content without a name to go by: HTML and JSON announce themselves in the first bytes.
fn sniff_text(head: &[u8]) -> Option<Format> {
    let text = String::from_utf8_lossy(head);
    let start = text.trim_start_matches('\u{FEFF}').trim_start();
    let lower: String = start
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        return Some(Format::Html);
    }
    // Only the head is here, so look at the shape rather than parse: `{"` or `[{`, `[1`, ...
    let mut chars = start.chars().filter(|c| !c.is_whitespace());
    match (chars.next(), chars.next()) {
        (Some('{'), Some('"' | '}')) => return Some(Format::Json),
        (Some('['), Some('{' | '[' | '"' | ']' | '-' | '0'..='9')) => return Some(Format::Json),
        _ => {}
    }
    None
}

/// NUL bytes (outside UTF-16 text) or well-known binary signatures mean "not text".
fn is_binary(head: &[u8]) -> bool {
    // Only signatures that no text starts with; most other binaries have a NUL early.
    const SIGNATURES: &[&[u8]] = &[
        b"\x89PNG",
        b"\xFF\xD8\xFF",
        b"GIF87a",
        b"GIF89a",
        b"\x1F\x8B",
        b"7z\xBC\xAF",
        b"Rar!\x1A",
        b"\x7FELF",
    ];
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return false;
    }
    SIGNATURES.iter().any(|s| head.starts_with(s)) || head.iter().take(8192).any(|&b| b == 0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_beats_extension() {
        assert_eq!(
            detect("report.txt", Some("text/plain"), b"%PDF-1.7\n"),
            Some(Format::Pdf)
        );
        assert_eq!(
            detect("a.docx", None, b"PK\x03\x04rest"),
            Some(Format::Docx)
        );
        assert_eq!(
            detect("a.zip", None, b"PK\x03\x04....word/document.xml"),
            Some(Format::Docx)
        );
        assert_eq!(detect("image.txt", None, b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(detect("x.xls", None, OLE_MAGIC), Some(Format::Spreadsheet));
        assert_eq!(detect("x.doc", None, OLE_MAGIC), None);
    }

    #[test]
    fn names_media_types_and_sniffing() {
        assert_eq!(
            detect("main.rs", None, b"fn main() {}"),
            Some(Format::Code {
                language: "rust".into()
            })
        );
        assert_eq!(
            detect("Dockerfile", None, b"FROM x"),
            Some(Format::Code {
                language: "dockerfile".into()
            })
        );
        assert_eq!(detect("notes.MD", None, b"# Hi"), Some(Format::Markdown));
        assert_eq!(
            detect("upload", Some("text/html; charset=utf-8"), b"<p>"),
            Some(Format::Html)
        );
        assert_eq!(
            detect("upload", None, b"  <!DOCTYPE html><html>"),
            Some(Format::Html)
        );
        assert_eq!(detect("upload", None, br#"{"a": 1}"#), Some(Format::Json));
        assert_eq!(
            detect("upload", None, "plain words, 日本語".as_bytes()),
            Some(Format::Text)
        );
        assert_eq!(detect("data.tsv", None, b"a\tb"), Some(Format::Csv));
    }
}
