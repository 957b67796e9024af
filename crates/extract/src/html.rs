//! HTML: parsed with scraper (html5ever, the browsers' algorithm, so broken markup reads as a
//! browser shows it); the main content is found (rustdoc's `#main-content`, `<main>`,
//! `[role=main]`, `<article>`, else `<body>`), boilerplate is dropped (scripts, styles,
//! navigation, headers and footers outside the article, forms, SVG, hidden elements, rustdoc's
//! toolbars), headings build the heading path, `<pre>` becomes fenced code and tables become
//! Markdown tables.

use scraper::{ElementRef, Html, Node};

use crate::html_raw::{flat_text, nesting_estimate, strip_raw_text};
use crate::sections::SectionBuilder;
use crate::text::{decode, fenced, markdown_table, one_line};
use crate::{ExtractError, Extracted};

/// Elements whose content is never text for a reader.
const DROPPED: &[&str] = &[
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "aside",
    "form",
    "svg",
    "math",
    "iframe",
    "object",
    "embed",
    "canvas",
    "button",
    "select",
    "input",
    "textarea",
    "head",
    "link",
    "meta",
    "dialog",
    // rustdoc's custom elements: the search bar and settings.
    "rustdoc-toolbar",
    "rustdoc-search",
    "rustdoc-topbar",
];

/// Classes and ids of chrome around the content: rustdoc's "Source" links, version badges,
/// tooltips and anchors; mdBook's menu and navigation; common cookie banners and share bars.
const DROPPED_CLASSES: &[&str] = &[
    "sidebar",
    "rightside",
    "sub-heading",
    "src",
    "anchor",
    "out-of-band",
    "tooltip",
    "notable-traits",
    "hideme",
    "nav-chapters",
    "nav-wrapper",
    "menu-bar",
    "mobile-nav-chapters",
    "skip-link",
    "sr-only",
    "visually-hidden",
    "cookie-banner",
    "breadcrumb",
    "breadcrumbs",
    "share",
    "advertisement",
    "doc-anchor",
    "rustdoc-breadcrumbs",
];
const DROPPED_IDS: &[&str] = &[
    "copy-path",
    "sidebar",
    "menu-bar",
    "searchbar",
    "search",
    "toc",
    "cookie-banner",
];

/// Elements that start a new block of text.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "blockquote",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "details",
    "summary",
    "address",
    "fieldset",
    "center",
    "hr",
    "body",
    "html",
    "caption",
    "legend",
];

/// Depth below which the tree is read as flat text: html5ever builds arbitrarily deep trees
/// (a page of 100,000 unclosed `<div>`s), and the walk is recursive.
const MAX_DEPTH: usize = 256;

/// Nesting beyond which the page is read as flat text instead of parsed into a tree: the HTML
/// tree-construction algorithm scans the stack of open elements for many tags, so parsing is
/// quadratic in nesting depth (100,000 unclosed `<div>`s take minutes). Real pages nest a few
/// dozen levels.
const MAX_NESTING: usize = 1_000;

pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let text = decode(bytes);
    let html = strip_raw_text(&text);
    if nesting_estimate(&html) > MAX_NESTING {
        let mut builder = SectionBuilder::new();
        builder.block(&flat_text(&html));
        return Ok(Extracted {
            title: None,
            sections: builder.finish(),
        });
    }
    let document = Html::parse_document(&html);
    let root = main_content(&document);
    let in_article = root.value().name() != "body" && root.value().name() != "html";
    let mut walker = Walker {
        in_article,
        ..Walker::default()
    };
    walker.walk(root, 0);
    walker.flush_inline();
    let title = page_title(&document).or(walker.first_h1);
    Ok(Extracted {
        title,
        sections: walker.builder.finish(),
    })
}

/// The element holding the page's main content, by the strongest signal present.
fn main_content(document: &Html) -> ElementRef<'_> {
    let mut by_id = None;
    let mut main = None;
    let mut role_main = None;
    let mut article = None;
    let mut body = None;
    for node in document.tree.nodes() {
        let Some(element) = ElementRef::wrap(node) else {
            continue;
        };
        let value = element.value();
        if by_id.is_none() && value.id() == Some("main-content") {
            by_id = Some(element);
        }
        match value.name() {
            "main" if main.is_none() => main = Some(element),
            "article" if article.is_none() => article = Some(element),
            "body" if body.is_none() => body = Some(element),
            _ => {}
        }
        if role_main.is_none() && value.attr("role") == Some("main") {
            role_main = Some(element);
        }
    }
    by_id
        .or(main)
        .or(role_main)
        .or(article)
        .or(body)
        .unwrap_or_else(|| document.root_element())
}

fn page_title(document: &Html) -> Option<String> {
    document
        .tree
        .nodes()
        .filter_map(ElementRef::wrap)
        .find(|e| e.value().name() == "title")
        .map(|e| one_line(&e.text().collect::<String>()))
        .filter(|t| !t.is_empty())
}

fn dropped(element: &ElementRef<'_>, in_article: bool) -> bool {
    let value = element.value();
    let name = value.name();
    if DROPPED.contains(&name) {
        return true;
    }
    // A page's header and footer are chrome; an article's header holds its title.
    if (name == "header" || name == "footer") && !in_article {
        return true;
    }
    if value.attr("hidden").is_some() || value.attr("aria-hidden") == Some("true") {
        return true;
    }
    if value.attr("style").is_some_and(|s| {
        let s = s.to_ascii_lowercase().replace(' ', "");
        s.contains("display:none") || s.contains("visibility:hidden")
    }) {
        return true;
    }
    if value.id().is_some_and(|id| DROPPED_IDS.contains(&id)) {
        return true;
    }
    value
        .classes()
        .any(|class| DROPPED_CLASSES.contains(&class))
}

/// How the current inline text will be emitted.
#[derive(Clone, Copy, PartialEq)]
enum Emitted {
    Paragraph,
    ListItem,
}

#[derive(Default)]
struct Walker {
    builder: SectionBuilder,
    /// The paragraph being collected, whitespace already collapsed.
    inline: String,
    /// Open lists: ordered, next number.
    lists: Vec<(bool, usize)>,
    /// The list-item marker waiting for the item's first text.
    item_prefix: Option<String>,
    last: Option<Emitted>,
    in_article: bool,
    first_h1: Option<String>,
}

impl Walker {
    fn walk(&mut self, element: ElementRef<'_>, depth: usize) {
        for child in element.children() {
            match child.value() {
                Node::Text(text) => self.push_text(text),
                Node::Element(_) => {
                    let Some(child) = ElementRef::wrap(child) else {
                        continue;
                    };
                    if depth >= MAX_DEPTH {
                        self.push_text(&child.text().collect::<String>());
                    } else if !dropped(&child, self.in_article) {
                        self.element(child, depth + 1);
                    }
                }
                _ => {}
            }
        }
    }

    fn element(&mut self, element: ElementRef<'_>, depth: usize) {
        let name = element.value().name();
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.flush_inline();
                let text = inline_text(element);
                let level = name.as_bytes()[1] - b'0';
                if level == 1 && self.first_h1.is_none() && !text.is_empty() {
                    self.first_h1 = Some(text.clone());
                }
                self.builder.heading(level, &text);
                self.last = None;
            }
            "pre" => {
                self.flush_inline();
                let mut code = String::new();
                pre_text(element, &mut code, 0);
                if !code.trim().is_empty() {
                    self.builder.block(&fenced(&code, &code_language(element)));
                    self.last = Some(Emitted::Paragraph);
                }
            }
            "table" => {
                self.flush_inline();
                let table = table_rows(element);
                if !table.is_empty() {
                    self.builder.block(&markdown_table(&table));
                    self.last = Some(Emitted::Paragraph);
                }
            }
            "ul" | "ol" | "menu" => {
                self.flush_inline();
                let start = element
                    .value()
                    .attr("start")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1);
                self.lists.push((name == "ol", start));
                self.walk(element, depth);
                self.flush_inline();
                self.lists.pop();
                if self.lists.is_empty() && self.last == Some(Emitted::ListItem) {
                    // The next list or paragraph is a new block.
                    self.last = Some(Emitted::Paragraph);
                }
            }
            "li" => {
                self.flush_inline();
                let indent = "  ".repeat(self.lists.len().saturating_sub(1).min(8));
                let marker = match self.lists.last_mut() {
                    Some((true, number)) => {
                        *number += 1;
                        format!("{indent}{}. ", *number - 1)
                    }
                    _ => format!("{indent}- "),
                };
                self.item_prefix = Some(marker);
                self.walk(element, depth);
                self.flush_inline();
                self.item_prefix = None;
            }
            "br" => self.inline.push('\n'),
            "code" | "kbd" | "samp" | "tt" => {
                let code = one_line(&element.text().collect::<String>());
                if !code.is_empty() {
                    self.space_if_needed();
                    self.inline.push('`');
                    self.inline.push_str(&code.replace('`', "'"));
                    self.inline.push('`');
                }
            }
            "img" => {}
            "article" | "main" => {
                let outer = self.in_article;
                self.in_article = true;
                self.block(element, depth);
                self.in_article = outer;
            }
            _ if BLOCKS.contains(&name) => self.block(element, depth),
            _ => self.walk(element, depth),
        }
    }

    fn block(&mut self, element: ElementRef<'_>, depth: usize) {
        self.flush_inline();
        self.walk(element, depth);
        self.flush_inline();
    }

    fn push_text(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        if chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.space_if_needed();
        }
        let mut pending_space = false;
        for c in chars {
            if c.is_whitespace() {
                pending_space = true;
            } else {
                if pending_space {
                    self.space_if_needed();
                    pending_space = false;
                }
                self.inline.push(c);
            }
        }
        if pending_space {
            self.space_if_needed();
        }
    }

    fn space_if_needed(&mut self) {
        if !self.inline.is_empty() && !self.inline.ends_with([' ', '\n']) {
            self.inline.push(' ');
        }
    }

    fn flush_inline(&mut self) {
        let text = self.inline.trim();
        if text.is_empty() {
            self.inline.clear();
            return;
        }
        let text = text.lines().map(str::trim).collect::<Vec<_>>().join("\n");
        match self.item_prefix.take() {
            Some(prefix) => {
                let indent = " ".repeat(prefix.len());
                let item = format!("{prefix}{}", text.replace('\n', &format!("\n{indent}")));
                if self.last == Some(Emitted::ListItem) {
                    self.builder.line(&item);
                } else {
                    self.builder.block(&item);
                }
                self.last = Some(Emitted::ListItem);
            }
            None if !self.lists.is_empty() && self.last == Some(Emitted::ListItem) => {
                // More text of the same item after a nested block: keep it in the list.
                let indent = "  ".repeat(self.lists.len());
                self.builder.line(&format!("{indent}{text}"));
            }
            None => {
                self.builder.block(&text);
                self.last = Some(Emitted::Paragraph);
            }
        }
        self.inline.clear();
    }
}

/// The one-line text of an element without its dropped parts (heading anchors, badges).
fn inline_text(element: ElementRef<'_>) -> String {
    let mut out = String::new();
    collect_text(element, &mut out, 0);
    one_line(&out)
}

fn collect_text(element: ElementRef<'_>, out: &mut String, depth: usize) {
    for child in element.children() {
        match child.value() {
            Node::Text(text) => out.push_str(text),
            Node::Element(_) => {
                let Some(child) = ElementRef::wrap(child) else {
                    continue;
                };
                if depth >= MAX_DEPTH {
                    out.extend(child.text());
                } else if !dropped(&child, true) {
                    // Block children (rustdoc's `<div class="where">`) and breaks separate words.
                    let name = child.value().name();
                    let separate = name == "br" || BLOCKS.contains(&name);
                    if separate {
                        out.push(' ');
                    }
                    collect_text(child, out, depth + 1);
                    if separate {
                        out.push(' ');
                    }
                }
            }
            _ => {}
        }
    }
}

/// The text of a `<pre>` block as written, without the lines mdBook hides (`class="boring"`:
/// the `fn main() {` wrapper around examples).
fn pre_text(element: ElementRef<'_>, out: &mut String, depth: usize) {
    for child in element.children() {
        match child.value() {
            Node::Text(text) => out.push_str(text),
            Node::Element(value)
                if value.has_class("boring", scraper::CaseSensitivity::CaseSensitive) => {}
            Node::Element(_) => {
                if let Some(child) = ElementRef::wrap(child) {
                    if depth >= MAX_DEPTH {
                        out.extend(child.text());
                    } else {
                        pre_text(child, out, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The language of a `<pre>` block from `class="language-rust"` on it or its `<code>`, or
/// rustdoc's `class="rust"`.
fn code_language(pre: ElementRef<'_>) -> String {
    let code = pre.child_elements().find(|e| e.value().name() == "code");
    for element in [Some(pre), code].into_iter().flatten() {
        for class in element.value().classes() {
            if let Some(language) = class
                .strip_prefix("language-")
                .or_else(|| class.strip_prefix("lang-"))
            {
                return language.to_string();
            }
            if matches!(
                class,
                "rust" | "python" | "javascript" | "bash" | "shell" | "console" | "toml" | "json"
            ) {
                return class.to_string();
            }
        }
    }
    String::new()
}

/// The rows of a table, cells as one-line text; nested tables are read as text.
fn table_rows(table: ElementRef<'_>) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for child in table.child_elements() {
        match child.value().name() {
            "tr" => rows.push(child),
            "thead" | "tbody" | "tfoot" => {
                rows.extend(child.child_elements().filter(|c| c.value().name() == "tr"))
            }
            _ => {}
        }
    }
    rows.into_iter()
        .map(|row| {
            row.child_elements()
                .filter(|c| matches!(c.value().name(), "td" | "th"))
                .map(inline_text)
                .collect::<Vec<String>>()
        })
        .filter(|row| row.iter().any(|cell| !cell.is_empty()))
        .collect()
}
