//! DOCX: walks `word/document.xml` with quick-xml — paragraphs, headings from paragraph styles
//! (Heading 1–9, Title, or an outline level), list items, tables, code-styled paragraphs — with
//! the heading names taken from `word/styles.xml` so localised style ids still count.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::ooxml::{attr, core_title, entity, local, xml_error};
use crate::package::Package;
use crate::sections::SectionBuilder;
use crate::text::{fenced, markdown_table, one_line};
use crate::{ExtractError, Extracted, Limits};

const KIND: &str = "DOCX";
const DOCUMENT: &str = "word/document.xml";

/// What a paragraph style means for extraction.
#[derive(Clone, Copy, Default)]
struct Style {
    /// 0 for Title, 1–9 for Heading 1–9.
    heading: Option<u8>,
    code: bool,
}

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut package = Package::open(bytes, KIND, limits.max_unpacked_bytes)?;
    let Some(document) = package.read_text(DOCUMENT)? else {
        let hint = if package.names().iter().any(|n| n.starts_with("ppt/")) {
            " (it looks like a PowerPoint file: name it .pptx)"
        } else if package.names().iter().any(|n| n.starts_with("xl/")) {
            " (it looks like an Excel file: name it .xlsx)"
        } else {
            ""
        };
        return Err(ExtractError::Corrupt(format!(
            "not a valid DOCX: missing {DOCUMENT}{hint}"
        )));
    };
    let styles = match package.read_text("word/styles.xml")? {
        Some(xml) => parse_styles(&xml),
        None => HashMap::new(),
    };
    let mut title = core_title(&mut package)?;
    let mut walker = Walker::new(&styles);
    walker.walk(&document)?;
    if title.is_none() {
        title = walker.first_title.take();
    }
    Ok(Extracted {
        title,
        sections: walker.finish(),
    })
}

/// Reads `styles.xml` into style id → meaning. Word writes localised ids ("berschrift1") but
/// English names ("heading 1"), so the name decides; an outline level counts too.
fn parse_styles(xml: &str) -> HashMap<String, Style> {
    let mut reader = Reader::from_str(xml);
    let mut styles = HashMap::new();
    let mut current: Option<(String, Style)> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if local(&e) == "style" => {
                current = attr(&e, "styleId").map(|id| (id, Style::default()));
            }
            Ok(Event::Start(e) | Event::Empty(e)) => {
                let Some((id, style)) = current.as_mut() else {
                    continue;
                };
                match local(&e) {
                    "name" => {
                        let name = attr(&e, "val").unwrap_or_default().to_ascii_lowercase();
                        *style = style_from_name(&name, id);
                    }
                    "outlineLvl" if style.heading.is_none() => {
                        style.heading = outline_level(attr(&e, "val"));
                    }
                    _ => {}
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == "style" => {
                if let Some((id, style)) = current.take() {
                    styles.insert(id, style);
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    styles
}

fn style_from_name(name: &str, id: &str) -> Style {
    let id = id.to_ascii_lowercase();
    let heading = if name == "title" || id == "title" {
        Some(0)
    } else {
        name.strip_prefix("heading ")
            .or_else(|| id.strip_prefix("heading"))
            .and_then(|n| n.trim().parse::<u8>().ok())
            .filter(|n| (1..=9).contains(n))
    };
    let code = ["code", "preformatted", "source", "verbatim"]
        .iter()
        .any(|w| name.contains(w) || id.contains(w));
    Style { heading, code }
}

fn outline_level(value: Option<String>) -> Option<u8> {
    // Level 9 means "body text" in Word.
    value
        .and_then(|v| v.parse::<u8>().ok())
        .filter(|&n| n < 9)
        .map(|n| n + 1)
}

/// A paragraph being read.
#[derive(Default)]
struct Paragraph {
    text: String,
    style: Option<String>,
    outline: Option<u8>,
    list_level: Option<u8>,
}

/// A table being read: rows of cells.
#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
}

struct Walker<'s> {
    styles: &'s HashMap<String, Style>,
    builder: SectionBuilder,
    paragraphs: Vec<Paragraph>,
    tables: Vec<Table>,
    /// Depth inside `w:r` (tabs and breaks count only there; `w:tabs` in paragraph properties
    /// defines tab stops).
    run_depth: usize,
    in_text: bool,
    /// Depth inside a subtree to skip (`mc:Fallback` repeats `mc:Choice`).
    skip_depth: usize,
    code: Vec<String>,
    last_was_list: bool,
    first_title: Option<String>,
}

impl<'s> Walker<'s> {
    fn new(styles: &'s HashMap<String, Style>) -> Self {
        Self {
            styles,
            builder: SectionBuilder::new(),
            paragraphs: Vec::new(),
            tables: Vec::new(),
            run_depth: 0,
            in_text: false,
            skip_depth: 0,
            code: Vec::new(),
            last_was_list: false,
            first_title: None,
        }
    }

    fn walk(&mut self, xml: &str) -> Result<(), ExtractError> {
        let mut reader = Reader::from_str(xml);
        loop {
            let event = reader
                .read_event()
                .map_err(|error| xml_error(KIND, DOCUMENT, &error))?;
            if self.skip_depth > 0 {
                match event {
                    Event::Start(_) => self.skip_depth += 1,
                    Event::End(_) => self.skip_depth -= 1,
                    Event::Eof => break,
                    _ => {}
                }
                continue;
            }
            match event {
                Event::Start(e) => match local(&e) {
                    "Fallback" => self.skip_depth = 1,
                    "p" => self.paragraphs.push(Paragraph::default()),
                    "r" => self.run_depth += 1,
                    "t" => self.in_text = true,
                    "tbl" => self.tables.push(Table::default()),
                    "tr" => self.row_start(),
                    "tc" => self.cell_start(),
                    _ => self.property(&e),
                },
                Event::Empty(e) => match local(&e) {
                    "tab" | "ptab" if self.run_depth > 0 => self.push_text(" "),
                    "br" | "cr" if self.run_depth > 0 => {
                        if attr(&e, "type").is_none_or(|t| t == "textWrapping") {
                            self.push_text("\n");
                        }
                    }
                    "noBreakHyphen" if self.run_depth > 0 => self.push_text("-"),
                    "p" => {}
                    _ => self.property(&e),
                },
                Event::Text(t) if self.in_text => self.push_text(&t),
                Event::GeneralRef(r) if self.in_text => {
                    if let Some(text) = entity(&r) {
                        self.push_text(&text);
                    }
                }
                Event::End(e) => match e.local_name().as_ref() {
                    "p" => self.paragraph_end(),
                    "r" => self.run_depth = self.run_depth.saturating_sub(1),
                    "t" => self.in_text = false,
                    "tbl" => self.table_end(),
                    _ => {}
                },
                Event::Eof => break,
                _ => {}
            }
        }
        Ok(())
    }

    /// Paragraph properties: style, outline level, list membership.
    fn property(&mut self, e: &quick_xml::events::BytesStart<'_>) {
        let Some(paragraph) = self.paragraphs.last_mut() else {
            return;
        };
        match local(e) {
            "pStyle" => paragraph.style = attr(e, "val"),
            "outlineLvl" => paragraph.outline = outline_level(attr(e, "val")),
            "numPr" => paragraph.list_level = Some(paragraph.list_level.unwrap_or(0)),
            "ilvl" => {
                paragraph.list_level = attr(e, "val").and_then(|v| v.parse().ok()).or(Some(0))
            }
            _ => {}
        }
    }

    fn push_text(&mut self, text: &str) {
        if let Some(paragraph) = self.paragraphs.last_mut() {
            paragraph.text.push_str(text);
        }
    }

    fn row_start(&mut self) {
        if let Some(table) = self.tables.last_mut() {
            table.rows.push(Vec::new());
        }
    }

    fn cell_start(&mut self) {
        if let Some(row) = self.tables.last_mut().and_then(|t| t.rows.last_mut()) {
            row.push(String::new());
        }
    }

    fn paragraph_end(&mut self) {
        let Some(paragraph) = self.paragraphs.pop() else {
            return;
        };
        let style = paragraph
            .style
            .as_ref()
            .and_then(|id| self.styles.get(id).copied())
            .unwrap_or_else(|| {
                // Documents without styles.xml (some generators) still use the built-in ids.
                paragraph
                    .style
                    .as_deref()
                    .map(|id| style_from_name("", id))
                    .unwrap_or_default()
            });
        // A paragraph inside a text box lives inside another paragraph: fold it into that one.
        if let Some(outer) = self.paragraphs.last_mut() {
            if !paragraph.text.trim().is_empty() {
                outer.text.push(' ');
                outer.text.push_str(paragraph.text.trim());
            }
            return;
        }
        if let Some(cell) = self
            .tables
            .last_mut()
            .and_then(|t| t.rows.last_mut())
            .and_then(|r| r.last_mut())
        {
            let text = one_line(&paragraph.text);
            if !text.is_empty() {
                if !cell.is_empty() {
                    cell.push(' ');
                }
                cell.push_str(&text);
            }
            return;
        }
        if style.code {
            self.code.push(paragraph.text.trim_end().to_string());
            return;
        }
        self.flush_code();
        let text = paragraph.text.trim();
        if text.is_empty() {
            return;
        }
        if let Some(level) = style.heading.or(paragraph.outline) {
            if level == 0 && self.first_title.is_none() {
                self.first_title = Some(one_line(text));
            }
            self.builder.heading(level, text);
            self.last_was_list = false;
        } else if let Some(level) = paragraph.list_level {
            let item = format!(
                "{}- {}",
                "  ".repeat(usize::from(level.min(8))),
                one_line(text)
            );
            if self.last_was_list {
                self.builder.line(&item)
            } else {
                self.builder.block(&item)
            }
            self.last_was_list = true;
        } else {
            self.builder.block(text);
            self.last_was_list = false;
        }
    }

    fn table_end(&mut self) {
        let Some(table) = self.tables.pop() else {
            return;
        };
        let rows: Vec<Vec<String>> = table
            .rows
            .into_iter()
            .filter(|row| row.iter().any(|cell| !cell.trim().is_empty()))
            .collect();
        if rows.is_empty() {
            return;
        }
        // A table nested in a cell becomes that cell's text, row by row.
        if let Some(cell) = self
            .tables
            .last_mut()
            .and_then(|t| t.rows.last_mut())
            .and_then(|r| r.last_mut())
        {
            for row in rows {
                if !cell.is_empty() {
                    cell.push_str("; ");
                }
                cell.push_str(&row.join(", "));
            }
            return;
        }
        self.flush_code();
        self.builder.block(&markdown_table(&rows));
        self.last_was_list = false;
    }

    fn flush_code(&mut self) {
        if self.code.is_empty() {
            return;
        }
        let code = std::mem::take(&mut self.code).join("\n");
        self.builder.block(&fenced(&code, ""));
        self.last_was_list = false;
    }

    fn finish(mut self) -> Vec<crate::Section> {
        self.flush_code();
        self.builder.finish()
    }
}
