//! Plain text and source code: decoded (UTF-8, UTF-16 or Windows-1252), cleaned, and for code
//! wrapped in fenced blocks — long files cut at top-level blank lines into parts of about
//! `LINES_PER_PART` lines, so no fenced block is larger than a splitter can keep whole.

use crate::sections::SectionBuilder;
use crate::text::{decode, fenced, normalize};
use crate::{ExtractError, Extracted};

const LINES_PER_PART: usize = 150;

pub(crate) fn extract_text(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut builder = SectionBuilder::new();
    builder.block(&decode(bytes));
    Ok(Extracted {
        title: None,
        sections: builder.finish(),
    })
}

pub(crate) fn extract_code(bytes: &[u8], language: &str) -> Result<Extracted, ExtractError> {
    let source = normalize(&decode(bytes));
    let lines: Vec<&str> = source.lines().collect();
    let mut builder = SectionBuilder::new();
    let parts = split_points(&lines);
    let single = parts.len() == 1;
    for (start, end) in parts {
        let label = (!single).then(|| format!("Lines {}–{}", start + 1, end));
        builder.place(None, label);
        builder.block(&fenced(&lines[start..end].join("\n"), language));
        builder.flush();
    }
    Ok(Extracted {
        title: None,
        sections: builder.finish(),
    })
}

/// Line ranges of about `LINES_PER_PART` lines, cut after a blank line that is followed by an
/// unindented line (between top-level items), or hard at twice the size.
fn split_points(lines: &[&str]) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index < lines.len() {
        let size = index - start;
        let boundary = index > 0
            && lines[index - 1].trim().is_empty()
            && !lines[index].starts_with([' ', '\t'])
            && !lines[index].trim().is_empty();
        if (size >= LINES_PER_PART && boundary) || size >= 2 * LINES_PER_PART {
            parts.push((start, index));
            start = index;
        }
        index += 1;
    }
    if start < lines.len() || parts.is_empty() {
        parts.push((start, lines.len()));
    }
    parts
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_long_code_between_items() {
        let mut lines = Vec::new();
        for item in 0..10 {
            lines.push(format!("fn f{item}() {{"));
            for _ in 0..30 {
                lines.push("    body();".to_string());
            }
            lines.push("}".to_string());
            lines.push(String::new());
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let parts = super::split_points(&refs);
        assert!(parts.len() >= 2);
        for (start, _) in &parts {
            assert!(
                refs[*start].starts_with("fn "),
                "cut inside an item at line {start}"
            );
        }
    }
}
