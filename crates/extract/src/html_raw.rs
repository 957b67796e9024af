//! Byte-level passes over raw HTML before it is parsed: cutting script and style bodies out of
//! large pages, estimating nesting depth, and the flat-text fallback for pages too deep to parse.

use std::borrow::Cow;

use crate::text::one_line;

/// Removes the bodies of `<script>` and `<style>` elements before parsing. Pages with megabytes
/// of inline script (bundled apps, tracking) would otherwise spend most of their time in the
/// tokenizer for text that is dropped anyway (50 MB of script: 1.8 s parsed, 50 ms stripped).
/// The HTML tokenizer ends these elements at the first `</script` / `</style` whatever comes
/// before, so cutting there matches what it does. Comments, quoted attribute values and the
/// text of `<title>` and `<textarea>` are stepped over, so a `<script` inside them starts
/// nothing.
pub(crate) fn strip_raw_text(html: &str) -> Cow<'_, str> {
    let bytes = html.as_bytes();
    if bytes.len() < 64 * 1024 {
        return Cow::Borrowed(html);
    }
    let mut out = String::with_capacity(html.len().min(4 << 20));
    let mut copied = 0usize;
    let mut at = 0usize;
    while let Some(offset) = bytes[at..].iter().position(|&b| b == b'<') {
        let open = at + offset;
        let rest = &bytes[open + 1..];
        if rest.starts_with(b"!--") {
            at = find(bytes, open + 4, b"-->").map_or(bytes.len(), |end| end + 3);
            continue;
        }
        if !rest
            .first()
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'/' || *b == b'!')
        {
            at = open + 1;
            continue;
        }
        let body = tag_end(bytes, open);
        let (end_tag, keep): (&[u8], bool) = if starts_with_tag(rest, b"script") {
            (b"</script", false)
        } else if starts_with_tag(rest, b"style") {
            (b"</style", false)
        } else if starts_with_tag(rest, b"title") {
            (b"</title", true)
        } else if starts_with_tag(rest, b"textarea") {
            (b"</textarea", true)
        } else {
            at = body;
            continue;
        };
        // Unclosed: the tokenizer reads the rest of the file as this element's text.
        let end = find(bytes, body, end_tag).unwrap_or(bytes.len());
        if !keep {
            out.push_str(&html[copied..body]);
            copied = end;
        }
        at = end.max(open + 1);
    }
    out.push_str(&html[copied..]);
    Cow::Owned(out)
}

/// The index just past the `>` that closes the tag opening at `open`, stepping over quoted
/// attribute values; the first `>` when the quotes never balance.
fn tag_end(bytes: &[u8], open: usize) -> usize {
    let mut quote = None;
    for (offset, &byte) in bytes[open..].iter().enumerate() {
        match (quote, byte) {
            (None, b'"' | b'\'') => quote = Some(byte),
            (Some(q), b) if b == q => quote = None,
            (None, b'>') => return open + offset + 1,
            _ => {}
        }
    }
    bytes[open..]
        .iter()
        .position(|&b| b == b'>')
        .map_or(bytes.len(), |p| open + p + 1)
}

/// Elements that need no end tag, or whose end tag is implied by the next sibling: they do not
/// nest, so they do not count towards the depth.
const NOT_NESTING: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead",
    "tbody", "tfoot", "colgroup", "rt", "rp", "!doctype", "html", "head", "body",
];

/// The deepest nesting of start tags without end tags, counted on the raw markup (a quick scan,
/// no parsing). Overestimates for sloppy markup (unclosed `<b>`), which the tree builder handles
/// just as slowly.
pub(crate) fn nesting_estimate(html: &str) -> usize {
    let bytes = html.as_bytes();
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut at = 0usize;
    while let Some(offset) = bytes[at..].iter().position(|&b| b == b'<') {
        let open = at + offset + 1;
        let Some(close) = bytes[open..]
            .iter()
            .position(|&b| b == b'>')
            .map(|p| open + p)
        else {
            break;
        };
        at = close + 1;
        let tag = &bytes[open..close];
        if tag.starts_with(b"!--") || tag.ends_with(b"/") {
            continue;
        }
        let (end, tag) = match tag.strip_prefix(b"/") {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        let name_len = tag
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(tag.len());
        let name = String::from_utf8_lossy(&tag[..name_len]).to_ascii_lowercase();
        if name.is_empty() || NOT_NESTING.contains(&name.as_str()) {
            continue;
        }
        if end {
            depth = depth.saturating_sub(1);
        } else {
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    deepest
}

/// The text of markup with every tag removed and the common entities decoded: the fallback for
/// pages too deeply nested to parse.
pub(crate) fn flat_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        rest = match rest[open..].find('>') {
            Some(close) => &rest[open + close + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    one_line(&decoded)
}

/// True when `rest` starts with the tag `name` (ASCII case ignored) followed by a delimiter.
fn starts_with_tag(rest: &[u8], name: &[u8]) -> bool {
    rest.len() > name.len()
        && rest[..name.len()].eq_ignore_ascii_case(name)
        && matches!(
            rest[name.len()],
            b'>' | b'/' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'
        )
}

/// Finds `needle` (lower-case ASCII) in `haystack` from `from`, ignoring ASCII case.
fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut start = from;
    while start + needle.len() <= haystack.len() {
        let offset = haystack[start..]
            .iter()
            .position(|&b| b == first || b == first.to_ascii_uppercase())?;
        let at = start + offset;
        if at + needle.len() <= haystack.len()
            && haystack[at..at + needle.len()].eq_ignore_ascii_case(needle)
        {
            return Some(at);
        }
        start = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(html: &str) -> String {
        format!("{html}{}", " ".repeat(70 * 1024))
    }

    #[test]
    fn strips_script_bodies_but_not_lookalikes() {
        let html = padded(
            r#"<title>About <script> tags</title><p data-x="<script>">kept</p><!-- <script> --><script type="x">drop()</script><p>after</p><STYLE>a{}</STYLE>"#,
        );
        let stripped = strip_raw_text(&html);
        assert!(stripped.starts_with(
            r#"<title>About <script> tags</title><p data-x="<script>">kept</p><!-- <script> --><script type="x"></script><p>after</p><STYLE></STYLE>"#
        ), "{}", &stripped[..200]);
    }

    #[test]
    fn nesting() {
        assert_eq!(
            nesting_estimate("<div><p>a<p>b<div><br><img src=x></div></div>"),
            2
        );
        assert_eq!(nesting_estimate(&"<b>".repeat(5000)), 5000);
        assert_eq!(flat_text("<div>a &amp; <b>b</b></div>"), "a & b");
    }
}
