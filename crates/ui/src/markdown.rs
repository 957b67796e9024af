//! Markdown for chat messages: language-model output rendered to an HTML fragment on the server,
//! with fenced code highlighted by syntect into CSS classes (`hl-*`, coloured by `code.css`).
//!
//! Model output is untrusted, so the fragment is safe to insert with `innerHTML`: raw HTML in the
//! input becomes escaped text; every tag we emit ourselves carries only attributes we chose (no
//! `style`, which the Content-Security-Policy forbids anyway, and no event handlers); link
//! destinations are kept only for `http(s):`, `mailto:` and scheme-less URLs; images become
//! links, so rendering a message never makes the browser fetch anything.
//!
//! An answer's citation markers (`[1]`, `[2, 3]`) become links to the passages its `citation`
//! parts name; markers without such a part stay text.

use std::sync::OnceLock;

use serde_json::Value;

use pulldown_cmark::{Alignment, CodeBlockKind, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};
use syntect::html::{ClassStyle, ClassedHTMLGenerator};
use syntect::parsing::{SyntaxReference, SyntaxSet};
use syntect::util::LinesWithEndings;

/// Larger blocks are shown unhighlighted: syntect's cost grows with input, and a reply is
/// rendered on every page view.
const MAX_HIGHLIGHT_BYTES: usize = 64 * 1024;
/// Bounds the work of one message with many blocks, each under the cap above (about 3 ms per KiB
/// in a release build). Every block is charged at least 1 KiB for its fixed set-up cost.
const MAX_HIGHLIGHT_PER_MESSAGE: usize = 128 * 1024;
const MIN_HIGHLIGHT_CHARGE: usize = 1024;

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// Renders untrusted Markdown to an HTML fragment that is safe to insert as-is.
pub fn render(markdown: &str) -> String {
    render_answer(markdown, &[])
}

/// A passage an answer may cite, from its `citation` part.
#[derive(Debug, Clone, PartialEq)]
pub struct Cite {
    pub n: u64,
    pub href: String,
    /// `Title › Section, page 3`.
    pub label: String,
}

/// The answer's citations, by number. Only same-site links are kept: parts come from our own
/// tools, but the page must not depend on that.
pub fn citations(parts: &[Value]) -> Vec<Cite> {
    let mut out: Vec<Cite> = parts
        .iter()
        .filter(|p| p["type"] == "citation")
        .filter_map(|p| {
            let href = p["href"].as_str().filter(|h| h.starts_with('/') && classify(h) == Some(Kind::Local))?;
            Some(Cite { n: p["n"].as_u64()?, href: href.to_owned(), label: citation_label(p) })
        })
        .collect();
    out.sort_by_key(|c| c.n);
    out
}

/// How a citation names its passage: title (else file name), section, page.
pub fn citation_label(p: &Value) -> String {
    let s = |k: &str| p[k].as_str().filter(|s| !s.trim().is_empty());
    let title = s("title").or(s("document")).unwrap_or("Passage");
    let mut label = title.to_owned();
    // The section path usually starts with the title (a document's first heading).
    let section = s("section").map(|s| s.strip_prefix(title).and_then(|r| r.strip_prefix(" › ")).unwrap_or(s));
    if let Some(section) = section.filter(|s| !s.is_empty() && *s != title) {
        label.push_str(" › ");
        label.push_str(section);
    }
    if let Some(page) = p["page"].as_i64() {
        label.push_str(&format!(", page {page}"));
    }
    label
}

/// The citation numbers an answer's text uses, in order of first use.
pub fn cited_numbers(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for (_, marker) in markers(text) {
        for n in marker {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// `[1]` and `[1, 2]` markers: (byte range, numbers).
fn markers(text: &str) -> Vec<(std::ops::Range<usize>, Vec<u64>)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // A marker is short: looking a few bytes ahead keeps long bracketed text linear.
        if bytes[i] == b'['
            && let Some(len) = bytes[i + 1..].iter().take(24).position(|b| *b == b']')
        {
            let inner = &text[i + 1..i + 1 + len];
            let numbers: Option<Vec<u64>> = inner.split(',').map(|n| n.trim()).map(|n| if n.len() <= 3 && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) { n.parse().ok() } else { None }).collect();
            if let Some(numbers) = numbers.filter(|n| !n.is_empty()) {
                out.push((i..i + len + 2, numbers));
                i += len + 2;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Renders an answer: Markdown as [`render`] does, with its citation markers linked.
pub fn render_answer(markdown: &str, parts: &[Value]) -> String {
    let mut renderer = Renderer { budget: MAX_HIGHLIGHT_PER_MESSAGE, cites: citations(parts), ..Renderer::default() };
    let mut events = Vec::new();
    for event in Parser::new_ext(markdown, options()) {
        renderer.feed(event, &mut events);
    }
    renderer.flush_text(&mut events);
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

/// Plain text of a message for previews: markup stripped, whitespace collapsed, at most
/// `max_chars` characters (ending in `…` when cut). Not escaped: the caller's template does that.
pub fn render_plain_excerpt(markdown: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    'events: for event in Parser::new_ext(markdown, options()) {
        let piece = match event {
            Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => t,
            Event::SoftBreak | Event::HardBreak | Event::Rule => {
                space = true;
                continue;
            }
            Event::End(end) => {
                space |= matches!(
                    end,
                    TagEnd::Paragraph
                        | TagEnd::Heading(_)
                        | TagEnd::Item
                        | TagEnd::CodeBlock
                        | TagEnd::BlockQuote(_)
                        | TagEnd::HtmlBlock
                        | TagEnd::TableCell
                        | TagEnd::TableRow
                        | TagEnd::TableHead
                );
                continue;
            }
            _ => continue,
        };
        for c in piece.chars() {
            if c.is_whitespace() {
                space = true;
                continue;
            }
            if space && count > 0 {
                out.push(' ');
                count += 1;
            }
            space = false;
            out.push(c);
            count += 1;
            // One character past the limit is enough to know the text was cut.
            if count > max_chars {
                break 'events;
            }
        }
    }
    if count > max_chars {
        out = out.chars().take(max_chars.saturating_sub(1)).collect();
        out.truncate(out.trim_end().len());
        if max_chars > 0 {
            out.push('…');
        }
    }
    out
}

#[derive(Default)]
struct Renderer {
    /// One entry per open `Link`: whether we emitted an `<a>` for it (and so must close it).
    links: Vec<bool>,
    image: Option<Image>,
    code: Option<Code>,
    table: Vec<Alignment>,
    table_head: bool,
    table_column: usize,
    budget: usize,
    cites: Vec<Cite>,
    /// Adjacent text events, joined so a marker split across them (`[`, `1`, `]`) is seen whole.
    text: String,
}

struct Image {
    href: Option<(Kind, String)>,
    alt: String,
    depth: usize,
}

struct Code {
    language: Option<String>,
    text: String,
}

impl Renderer {
    fn inside_anchor(&self) -> bool {
        self.links.iter().any(|&open| open)
    }

    fn feed<'a>(&mut self, event: Event<'a>, out: &mut Vec<Event<'a>>) {
        if let Some(image) = &mut self.image {
            // An image's description is flattened into its alt text, like an `<img alt>` would be.
            match event {
                Event::Start(Tag::Image { .. }) => image.depth += 1,
                Event::End(TagEnd::Image) if image.depth > 0 => image.depth -= 1,
                Event::End(TagEnd::Image) => {
                    if let Some(image) = self.image.take() {
                        out.push(html(image_html(image)));
                    }
                }
                Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => {
                    image.alt.push_str(&t);
                }
                Event::SoftBreak | Event::HardBreak => image.alt.push(' '),
                _ => {}
            }
            return;
        }
        if let Some(code) = &mut self.code {
            match event {
                Event::End(TagEnd::CodeBlock) => {
                    if let Some(code) = self.code.take() {
                        let block = self.code_html(code);
                        out.push(html(block));
                    }
                }
                Event::Text(t) => code.text.push_str(&t),
                _ => {}
            }
            return;
        }
        if !self.cites.is_empty() && !self.inside_anchor()
            && let Event::Text(t) = &event
        {
            self.text.push_str(t);
            return;
        }
        self.flush_text(out);
        match event {
            // The heart of the safety argument: raw HTML from the model is shown, never parsed.
            Event::Html(t) | Event::InlineHtml(t) => out.push(Event::Text(t)),
            Event::Start(Tag::HtmlBlock) => out.push(Event::Start(Tag::Paragraph)),
            Event::End(TagEnd::HtmlBlock) => out.push(Event::End(TagEnd::Paragraph)),

            Event::Start(Tag::Link { link_type, dest_url, title, .. }) => {
                let dest = match link_type {
                    LinkType::Email => CowStr::from(format!("mailto:{dest_url}")),
                    _ => dest_url,
                };
                // Nested anchors are invalid HTML; an inner link degrades to its text.
                let kind = if self.inside_anchor() { None } else { classify(&dest) };
                self.links.push(kind.is_some());
                if let Some(kind) = kind {
                    out.push(html(open_anchor(kind, &dest, &title)));
                }
            }
            Event::End(TagEnd::Link) => {
                if self.links.pop() == Some(true) {
                    out.push(html("</a>".to_owned()));
                }
            }
            Event::Start(Tag::Image { dest_url, .. }) => {
                let href = if self.inside_anchor() { None } else { classify(&dest_url) };
                let href = href.map(|kind| (kind, dest_url.to_string()));
                self.image = Some(Image { href, alt: String::new(), depth: 0 });
            }

            Event::Start(Tag::CodeBlock(kind)) => {
                let language = match kind {
                    CodeBlockKind::Fenced(info) => language_token(&info),
                    CodeBlockKind::Indented => None,
                };
                self.code = Some(Code { language, text: String::new() });
            }

            // pulldown-cmark writes alignment as `style="text-align: …"`, which the CSP would
            // block; tables are written here with classes instead.
            Event::Start(Tag::Table(alignments)) => {
                self.table = alignments;
                out.push(html("<table>".to_owned()));
            }
            Event::End(TagEnd::Table) => out.push(html("</tbody></table>\n".to_owned())),
            Event::Start(Tag::TableHead) => {
                self.table_head = true;
                self.table_column = 0;
                out.push(html("<thead><tr>".to_owned()));
            }
            Event::End(TagEnd::TableHead) => {
                self.table_head = false;
                out.push(html("</tr></thead><tbody>\n".to_owned()));
            }
            Event::Start(Tag::TableRow) => {
                self.table_column = 0;
                out.push(html("<tr>".to_owned()));
            }
            Event::End(TagEnd::TableRow) => out.push(html("</tr>\n".to_owned())),
            Event::Start(Tag::TableCell) => {
                let cell = if self.table_head { "th" } else { "td" };
                let class = match self.table.get(self.table_column) {
                    Some(Alignment::Left) => " class=\"align-left\"",
                    Some(Alignment::Center) => " class=\"align-center\"",
                    Some(Alignment::Right) => " class=\"align-right\"",
                    Some(Alignment::None) | None => "",
                };
                out.push(html(format!("<{cell}{class}>")));
            }
            Event::End(TagEnd::TableCell) => {
                self.table_column += 1;
                out.push(html(if self.table_head { "</th>" } else { "</td>" }.to_owned()));
            }

            other => out.push(other),
        }
    }

    /// Writes the held text, with each marker whose numbers all have a citation as links.
    fn flush_text(&mut self, out: &mut Vec<Event<'_>>) {
        if self.text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.text);
        let mut at = 0;
        for (range, numbers) in markers(&text) {
            let found: Option<Vec<&Cite>> = numbers.iter().map(|n| self.cites.iter().find(|c| c.n == *n)).collect();
            let Some(found) = found else { continue };
            if range.start > at {
                out.push(Event::Text(CowStr::from(text[at..range.start].to_owned())));
            }
            let link = |c: &Cite, shown: String| {
                format!("<a class=\"cite\" href=\"{}\" title=\"{}\" target=\"_blank\" rel=\"noopener\">{shown}</a>", escape(&c.href), escape(&c.label))
            };
            let anchors = match found.as_slice() {
                [one] => link(one, format!("[{}]", one.n)),
                many => format!("[{}]", many.iter().map(|c| link(c, c.n.to_string())).collect::<Vec<_>>().join(", ")),
            };
            out.push(html(anchors));
            at = range.end;
        }
        if at < text.len() {
            out.push(Event::Text(CowStr::from(text[at..].to_owned())));
        }
    }

    fn code_html(&mut self, code: Code) -> String {
        let class = match &code.language {
            Some(language) => format!(" class=\"language-{language}\""),
            None => String::new(),
        };
        let charge = code.text.len().max(MIN_HIGHLIGHT_CHARGE);
        let body = code
            .language
            .as_deref()
            .filter(|_| code.text.len() <= MAX_HIGHLIGHT_BYTES && charge <= self.budget)
            .and_then(|language| syntaxes().find_syntax_by_token(language))
            .and_then(|syntax| {
                self.budget -= charge;
                highlight(syntax, &code.text)
            });
        let body = body.unwrap_or_else(|| escape(&code.text));
        format!("<pre class=\"code\"><code{class}>{body}</code></pre>\n")
    }
}

fn html(s: String) -> Event<'static> {
    Event::Html(CowStr::from(s))
}

/// How a kept destination is opened.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// Another site: new tab, no opener, no referrer, no ranking credit.
    External,
    Mail,
    /// Same site (path or fragment): opens in place.
    Local,
}

/// Decides from the destination as pulldown-cmark decoded it (entities and backslash escapes
/// already resolved), so `&#106;avascript:` is judged as `javascript:`. Anything that could be
/// read as a scheme must be one of ours; browsers strip tabs and newlines inside schemes and
/// leading spaces and controls, so those are refused outright rather than normalised.
fn classify(url: &str) -> Option<Kind> {
    if url.is_empty() || url.starts_with(char::is_whitespace) || url.chars().any(char::is_control) {
        return None;
    }
    // Browsers read `\` as `/` in http(s) URLs, so `/\host` leaves the site like `//host` does.
    let head = url.get(..2).unwrap_or(url).replace('\\', "/");
    if head == "//" {
        return Some(Kind::External);
    }
    match url.find([':', '/', '?', '#']) {
        Some(i) if url[i..].starts_with(':') => match url[..i].to_ascii_lowercase().as_str() {
            "http" | "https" => Some(Kind::External),
            "mailto" => Some(Kind::Mail),
            _ => None,
        },
        _ => Some(Kind::Local),
    }
}

fn open_anchor(kind: Kind, href: &str, title: &str) -> String {
    let mut a = format!("<a href=\"{}\"", escape(href));
    if !title.is_empty() {
        a.push_str(&format!(" title=\"{}\"", escape(title)));
    }
    match kind {
        Kind::External => a.push_str(" rel=\"noopener noreferrer nofollow\" target=\"_blank\""),
        Kind::Mail => a.push_str(" rel=\"noopener noreferrer nofollow\""),
        Kind::Local => {}
    }
    a.push('>');
    a
}

/// An `<img>` would make every reader's browser fetch a URL the model chose (tracking pixels,
/// requests into the reader's network); a link fetches only when the reader clicks.
fn image_html(image: Image) -> String {
    let alt = image.alt.trim();
    match image.href {
        Some((kind, href)) => {
            let text = if alt.is_empty() { href.as_str() } else { alt };
            format!("{}{}</a>", open_anchor(kind, &href, ""), escape(text))
        }
        None => escape(alt),
    }
}

/// The first word of a fence's info string (```` ```rust,ignore ```` → `rust`), lower-cased and
/// reduced to characters that are safe in a class name.
fn language_token(info: &str) -> Option<String> {
    let word = info.split([' ', '\t', ',', '{']).next().unwrap_or("");
    let token: String = word
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '#' | '-'))
        .take(32)
        .collect();
    (!token.is_empty()).then_some(token)
}

/// Loaded on the first code block rather than at start-up: decoding the bundled syntaxes costs
/// tens of milliseconds that a server which never renders code should not pay.
fn syntaxes() -> &'static SyntaxSet {
    static SYNTAXES: OnceLock<SyntaxSet> = OnceLock::new();
    SYNTAXES.get_or_init(SyntaxSet::load_defaults_newlines)
}

/// `None` when highlighting fails; the caller shows plain text.
fn highlight(syntax: &SyntaxReference, code: &str) -> Option<String> {
    let set = syntaxes();
    // syntect compiles grammar regexes lazily and asserts they compile; a grammar bug met on
    // model input must cost one block its colours, not the whole page.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let style = ClassStyle::SpacedPrefixed { prefix: "hl-" };
        let mut generator = ClassedHTMLGenerator::new_with_class_style(syntax, set, style);
        for line in LinesWithEndings::from(code) {
            generator.parse_html_for_line_which_includes_newline(line).ok()?;
        }
        Some(generator.finalize())
    }))
    .ok()
    .flatten()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Nothing in the fragment may run script or restyle the page.
    fn assert_inert(html: &str) {
        let lower = html.to_lowercase();
        for bad in ["<script", "javascript:", "<img", "style=", "onerror", "<iframe"] {
            assert!(!lower.contains(bad), "{bad:?} in {html}");
        }
    }

    #[test]
    fn common_markdown_renders() {
        let html = render("# Title\n\nSome *em* and **strong** and ~~gone~~.\n\n- one\n- two\n\n1. first\n");
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<em>em</em>") && html.contains("<strong>strong</strong>"), "{html}");
        assert!(html.contains("<del>gone</del>"), "{html}");
        assert!(html.contains("<ul>\n<li>one</li>\n<li>two</li>\n</ul>"), "{html}");
        assert!(html.contains("<ol>\n<li>first</li>"), "{html}");
        assert!(render("use `a<b>` here").contains("<code>a&lt;b&gt;</code>"));
    }

    #[test]
    fn tables_use_classes_for_alignment() {
        let html = render("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |\n");
        assert!(html.contains("<thead><tr><th class=\"align-left\">a</th>"), "{html}");
        assert!(html.contains("<td class=\"align-center\">2</td><td class=\"align-right\">3</td>"), "{html}");
        assert!(html.contains("</tbody></table>"), "{html}");
        assert_inert(&html);
    }

    #[test]
    fn raw_html_is_shown_as_text() {
        let inline = render("Hello <script>alert(1)</script> there");
        assert!(inline.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{inline}");
        let block = render("<script>alert(1)</script>\n\nafter");
        assert!(block.contains("<p>&lt;script&gt;alert(1)&lt;/script&gt;"), "{block}");
        let img = render("<img src=x onerror=alert(1)>");
        assert!(img.contains("&lt;img src=x onerror=alert(1)&gt;"), "{img}");
        let lower = format!("{inline}{block}{img}").to_lowercase();
        assert!(!lower.contains("<script") && !lower.contains("<img"), "{lower}");
    }

    #[test]
    fn dangerous_link_schemes_leave_only_the_text() {
        for input in [
            "[x](javascript:alert(1))",
            "[x](JAVASCRIPT:alert(1))",
            "[x]( javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
            "[x](&#106;avascript:alert(1))",
            "[x](java&#9;script:alert(1))",
            "[x](&#x20;javascript:alert(1))",
            "[x](vbscript:msgbox)",
            "[x](file:///etc/passwd)",
            "[x](<java\tscript:alert(1)>)",
        ] {
            let html = render(input);
            assert!(!html.contains("<a"), "{input} gave {html}");
            assert!(!html.to_lowercase().contains("script:"), "{input} gave {html}");
            assert!(!html.to_lowercase().contains("data:"), "{input} gave {html}");
            assert!(html.contains(">x</p>"), "{input} lost its text: {html}");
        }
        assert!(!render("<javascript:alert(1)>").contains("<a"));
    }

    #[test]
    fn safe_links_are_kept() {
        let html = render("[docs](https://example.com/a?b=1&c=\"2\" \"T\")");
        assert_eq!(
            html,
            "<p><a href=\"https://example.com/a?b=1&amp;c=&quot;2&quot;\" title=\"T\" \
             rel=\"noopener noreferrer nofollow\" target=\"_blank\">docs</a></p>\n"
        );
        let mail = render("<me@example.com>");
        assert!(mail.contains("<a href=\"mailto:me@example.com\" rel=\"noopener noreferrer nofollow\">"), "{mail}");
        assert!(render("[top](#intro)").contains("<a href=\"#intro\">top</a>"));
        assert!(render("[page](/orgs/x)").contains("<a href=\"/orgs/x\">page</a>"));
        assert!(render("[p](a/b)").contains("<a href=\"a/b\">p</a>"));
        // Protocol-relative, even spelt with a backslash, is another site.
        assert!(render("[e](//evil.example)").contains("target=\"_blank\""));
        assert!(render("[e](/\\evil.example)").contains("target=\"_blank\""));
    }

    #[test]
    fn images_become_links() {
        let html = render("![a cat](https://example.com/cat.png)");
        let expected = "<a href=\"https://example.com/cat.png\" \
                        rel=\"noopener noreferrer nofollow\" target=\"_blank\">a cat</a>";
        assert!(html.contains(expected), "{html}");
        let bare = render("![](https://example.com/x.png)");
        assert!(bare.contains(">https://example.com/x.png</a>"), "{bare}");
        let bad = render("![pic](javascript:alert(1))");
        assert_eq!(bad, "<p>pic</p>\n");
        // A badge inside a link: one anchor, the image shown as its alt text.
        let badge = render("[![build](https://ci.example/b.svg)](https://ci.example)");
        assert_eq!(badge.matches("<a ").count(), 1, "{badge}");
        assert!(badge.contains(">build</a>"), "{badge}");
        for html in [html, bare, bad, badge] {
            assert_inert(&html);
        }
    }

    #[test]
    fn rust_code_is_highlighted_with_classes() {
        let html = render("```rust\nfn main() { let s = \"<b>\"; }\n```\n");
        assert!(html.starts_with("<pre class=\"code\"><code class=\"language-rust\">"), "{html}");
        assert!(html.contains("<span class=\"hl-"), "{html}");
        assert!(html.contains("&lt;b&gt;"), "{html}");
        assert_inert(&html);
    }

    #[test]
    fn unknown_or_missing_language_is_plain() {
        let html = render("```nonexistent-lang\n<script>x</script>\n```\n");
        assert_eq!(
            html,
            "<pre class=\"code\"><code class=\"language-nonexistent-lang\">\
             &lt;script&gt;x&lt;/script&gt;\n</code></pre>\n"
        );
        let hostile = render("```\"><script>\nx\n```\n");
        assert!(hostile.contains("<code class=\"language-script\">x\n</code>"), "{hostile}");
        let indented = render("    let x = 1;\n");
        assert_eq!(indented, "<pre class=\"code\"><code>let x = 1;\n</code></pre>\n");
    }

    #[test]
    fn huge_code_blocks_are_not_highlighted() {
        let code = "let x = 1;\n".repeat(70 * 1024 / 11);
        let html = render(&format!("```rust\n{code}```\n"));
        assert!(html.starts_with("<pre class=\"code\"><code class=\"language-rust\">let x"), "{}", &html[..80]);
        assert!(!html.contains("<span"));
    }

    #[test]
    fn highlighting_work_per_message_is_bounded() {
        let html = render(&"```rust\nlet x = 1;\n```\n".repeat(200));
        assert_eq!(html.matches("<pre class=\"code\">").count(), 200);
        assert_eq!(html.matches("hl-source").count(), MAX_HIGHLIGHT_PER_MESSAGE / MIN_HIGHLIGHT_CHARGE);
    }

    #[test]
    fn task_lists_render_disabled_checkboxes() {
        let html = render("- [x] done\n- [ ] todo\n");
        assert!(html.contains("<li><input disabled=\"\" type=\"checkbox\" checked=\"\"/>\ndone</li>"), "{html}");
        assert!(html.contains("<li><input disabled=\"\" type=\"checkbox\"/>\ntodo</li>"), "{html}");
    }

    #[test]
    fn citation_markers_link_to_their_passages() {
        let parts = vec![
            serde_json::json!({"type": "citation", "n": 1, "title": "Lighthouses", "section": "Keepers", "page": 2, "href": "/dashboard/d/knowledge/documents/x?chunk=x%3A1#passage"}),
            serde_json::json!({"type": "citation", "n": 2, "document": "b.md", "href": "/dashboard/d/knowledge/documents/y?chunk=y%3A0#passage"}),
            serde_json::json!({"type": "citation", "n": 3, "document": "evil", "href": "javascript:alert(1)"}),
        ];
        let html = render_answer("Keepers trimmed wicks [1]. Both say so [1, 2]. Not [3], not [9], and `[1]` is code; a[i] stays.", &parts);
        assert!(html.contains("<a class=\"cite\" href=\"/dashboard/d/knowledge/documents/x?chunk=x%3A1#passage\" title=\"Lighthouses › Keepers, page 2\" target=\"_blank\" rel=\"noopener\">[1]</a>."), "{html}");
        assert!(html.contains("[<a class=\"cite\" href=\"/dashboard/d/knowledge/documents/x?chunk=x%3A1#passage\""), "{html}");
        assert!(html.contains(">2</a>]"), "{html}");
        assert!(html.contains("Not [3], not [9]"), "a citation without a safe link, or none, stays text: {html}");
        assert!(html.contains("<code>[1]</code>") && html.contains("a[i] stays"), "{html}");
        assert_inert(&html);
        assert_eq!(render_answer("plain [1]", &[]), "<p>plain [1]</p>\n");
        assert_eq!(cited_numbers("a [2] b [1, 2] c [x]"), [2, 1]);
    }

    #[test]
    fn excerpts_are_plain_text() {
        let md = "# Hello *world*\n\nSee [the docs](https://x.example) and `code`.\n\n- a\n- b\n";
        assert_eq!(render_plain_excerpt(md, 100), "Hello world See the docs and code. a b");
        assert_eq!(render_plain_excerpt(md, 11), "Hello worl…");
        assert_eq!(render_plain_excerpt("**bo**ld", 10), "bold");
        assert_eq!(render_plain_excerpt("abc", 3), "abc");
        assert_eq!(render_plain_excerpt("abc", 0), "");
    }
}
