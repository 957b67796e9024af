//! Text clean-up shared by every format: decoding legacy bytes, dropping control characters and
//! collapsing blank lines, so every section's text is tidy UTF-8.

use std::borrow::Cow;

/// Decodes bytes of unknown encoding: UTF-8 (with or without BOM), UTF-16 with a BOM, else
/// Windows-1252 — the usual encoding of legacy TXT and CSV exports, and a superset of Latin-1,
/// so every byte maps to some character and nothing is lost silently as U+FFFD.
pub(crate) fn decode(bytes: &[u8]) -> Cow<'_, str> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8_lossy(rest);
    }
    if bytes.starts_with(b"\xFF\xFE") {
        return encoding_rs::UTF_16LE.decode_with_bom_removal(bytes).0;
    }
    if bytes.starts_with(b"\xFE\xFF") {
        return encoding_rs::UTF_16BE.decode_with_bom_removal(bytes).0;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        // A file that is almost UTF-8 (one bad byte in a long file) is better read as UTF-8
        // with a replacement character than as mojibake throughout.
        Err(error) if error.valid_up_to() > bytes.len() / 2 && mostly_utf8(bytes) => {
            String::from_utf8_lossy(bytes)
        }
        Err(_) => {
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
        }
    }
}

/// True when at most one in a thousand bytes breaks UTF-8 (and there are non-ASCII sequences
/// that do decode, so the file is UTF-8 with a few bad bytes rather than Windows-1252).
fn mostly_utf8(bytes: &[u8]) -> bool {
    let mut bad = 0usize;
    let mut rest = bytes;
    while let Err(error) = std::str::from_utf8(rest) {
        bad += 1;
        let skip = error.valid_up_to()
            + error
                .error_len()
                .unwrap_or(rest.len() - error.valid_up_to());
        rest = &rest[skip.min(rest.len())..];
        if bad * 1000 > bytes.len() {
            return false;
        }
    }
    true
}

/// Cleans text for a section: line ends become `\n`, control characters other than newline and
/// tab go (NUL, form feed, C1 controls), trailing spaces on lines go, runs of blank lines become
/// one, and leading and trailing blank lines go. Everything else — CJK, Arabic, emoji with their
/// joiners — passes through unchanged.
pub(crate) fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0usize;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let start = out.len();
        // Old Mac line ends: a lone CR inside the line is a line break too.
        for (index, part) in line.split('\r').enumerate() {
            if index > 0 {
                out.push('\n');
            }
            push_clean(&mut out, part);
        }
        let trimmed_len = out[start..].trim_end().len();
        out.truncate(start + trimmed_len);
        if out.len() == start {
            blank_run += 1;
            if blank_run == 1 && start > 0 {
                out.push('\n');
            }
        } else {
            blank_run = 0;
            out.push('\n');
        }
    }
    let end = out.trim_end().len();
    out.truncate(end);
    let leading = out.len() - out.trim_start_matches('\n').len();
    out.drain(..leading);
    out
}

fn push_clean(out: &mut String, part: &str) {
    if part.chars().all(|c| !c.is_control() || c == '\t') && !part.contains('\u{FEFF}') {
        out.push_str(part);
        return;
    }
    out.extend(
        part.chars()
            .filter(|&c| (!c.is_control() || c == '\t') && c != '\u{FEFF}'),
    );
}

/// Collapses runs of whitespace (including newlines) into single spaces and trims the ends:
/// for headings, table cells and other one-line text.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().filter(|c| !c.is_control()));
    }
    out
}

/// Renders rows as a Markdown table: the first row is the header, cells are made one-line and
/// `|` is escaped, short rows are padded so every line has the same number of cells.
pub(crate) fn markdown_table(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    for (index, row) in rows.iter().enumerate() {
        out.push('|');
        for column in 0..width {
            let cell = row
                .get(column)
                .map(|cell| one_line(cell))
                .unwrap_or_default();
            out.push(' ');
            out.push_str(&cell.replace('|', "\\|"));
            out.push_str(" |");
        }
        out.push('\n');
        if index == 0 {
            out.push('|');
            for _ in 0..width {
                out.push_str(" --- |");
            }
            out.push('\n');
        }
    }
    out.pop();
    out
}

/// A fenced code block whose fence is longer than any backtick run inside the code, so code that
/// itself contains fences (Markdown examples) stays one block.
pub(crate) fn fenced(code: &str, language: &str) -> String {
    let mut longest = 0usize;
    let mut run = 0usize;
    for c in code.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest.max(2) + 1);
    let code = code.trim_matches('\n');
    format!("{fence}{language}\n{code}\n{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_cleans_controls_and_blank_lines() {
        let raw = "\n\nTitle  \r\n\r\n\r\n\u{0}Body\u{7}\ttab\u{c}\n\n\n\nEnd\n\n";
        assert_eq!(normalize(raw), "Title\n\nBody\ttab\n\nEnd");
    }

    #[test]
    fn normalize_keeps_mixed_scripts() {
        let raw = "日本語のテキスト\nمرحبا بالعالم\n👩‍👩‍👧 family, 🇩🇪 flag, é";
        assert_eq!(normalize(raw), raw);
    }

    #[test]
    fn decode_falls_back_to_windows_1252() {
        assert_eq!(decode(b"caf\xe9 \x80 na\xefve"), "café € naïve");
        assert_eq!(decode("café".as_bytes()), "café");
        assert_eq!(decode(b"\xEF\xBB\xBFbom"), "bom");
        assert_eq!(decode(b"\xFF\xFEh\0i\0"), "hi");
    }

    #[test]
    fn table_and_fence() {
        let rows = vec![
            vec!["a".to_string(), "b|c".to_string()],
            vec!["1".to_string()],
        ];
        assert_eq!(
            markdown_table(&rows),
            "| a | b\\|c |\n| --- | --- |\n| 1 |  |"
        );
        assert_eq!(fenced("x\n```\ny", "md"), "````md\nx\n```\ny\n````");
    }
}
