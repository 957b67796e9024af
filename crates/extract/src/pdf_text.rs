//! Reads the text of a PDF page from its content stream: tracks the text and graphics matrices
//! and glyph widths to put spaces between words and line breaks between lines, then splits
//! paragraphs where the gap between lines is wider than the page's usual line gap.
//!
//! lopdf's own `extract_text` only breaks lines at `ET`/`T*` and re-parses every font's
//! `ToUnicode` map on every page; this reader caches fonts per document and follows Form
//! XObjects (bounded in depth and work), which some generators put all text in.

use std::collections::HashMap;

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Encoding, Object, ObjectId};

/// Nesting of Form XObjects followed (a form drawing a form ...).
const MAX_FORM_DEPTH: usize = 8;
/// Operators read per page across all its forms: a form drawn thousands of times, each drawing
/// more forms, would otherwise multiply without bound.
const MAX_OPERATIONS: usize = 2_000_000;

type Matrix = [f32; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

fn multiply(m: &Matrix, n: &Matrix) -> Matrix {
    [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]
}

/// A font as far as text extraction cares: how to decode, how wide glyphs are.
struct Font<'a> {
    encoding: Option<Encoding<'a>>,
    /// Two-byte codes (Type0 / CID fonts).
    wide: bool,
    first_char: u32,
    widths: Vec<f32>,
    /// CID widths from `/W` ranges: (first, last, width).
    cid_widths: Vec<(u32, u32, f32)>,
    default_width: f32,
}

impl Font<'_> {
    fn width(&self, code: u32) -> f32 {
        if self.wide {
            // Sorted by first code: the candidate is the last range starting at or before it.
            let index = self
                .cid_widths
                .partition_point(|(first, _, _)| *first <= code);
            return match index.checked_sub(1).map(|i| self.cid_widths[i]) {
                Some((_, last, width)) if code <= last => width,
                _ => self.default_width,
            };
        }
        code.checked_sub(self.first_char)
            .and_then(|i| self.widths.get(i as usize))
            .copied()
            .filter(|w| *w > 0.0)
            .unwrap_or(self.default_width)
    }
}

/// One line of text on the page with where it sits.
struct Line {
    text: String,
    y: f32,
    size: f32,
}

/// The text state while reading a page.
struct State {
    ctm: Matrix,
    stack: Vec<Matrix>,
    tm: Matrix,
    tlm: Matrix,
    font: Option<usize>,
    size: f32,
    char_spacing: f32,
    word_spacing: f32,
    scale: f32,
    leading: f32,
}

impl Default for State {
    fn default() -> Self {
        Self {
            ctm: IDENTITY,
            stack: Vec::new(),
            tm: IDENTITY,
            tlm: IDENTITY,
            font: None,
            size: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            scale: 1.0,
            leading: 0.0,
        }
    }
}

/// Reads pages of one document; fonts are decoded once and shared by every page.
pub(crate) struct PageReader<'a> {
    document: &'a Document,
    /// Bound on one decompressed stream.
    limit: usize,
    /// Decompressed content left for the whole document (`max_unpacked_bytes`), so thousands
    /// of pages that each inflate to just under the limit still stop.
    budget: usize,
    fonts: Vec<Font<'a>>,
    font_index: HashMap<usize, usize>,
}

/// Where the last glyphs ended, to decide between nothing, a space and a new line.
struct Cursor {
    x: f32,
    y: f32,
    size: f32,
}

struct Page {
    lines: Vec<Line>,
    current: String,
    cursor: Option<Cursor>,
    operations: usize,
}

impl<'a> PageReader<'a> {
    pub(crate) fn new(document: &'a Document, limit: usize) -> Self {
        Self {
            document,
            limit,
            budget: limit,
            fonts: Vec::new(),
            font_index: HashMap::new(),
        }
    }

    /// The page's text: lines joined by newlines, paragraphs by blank lines.
    pub(crate) fn page_text(&mut self, page_id: ObjectId) -> Result<String, lopdf::Error> {
        let content = self
            .document
            .get_page_content_with_limit(page_id, self.limit.min(self.budget))?;
        self.budget = self.budget.saturating_sub(content.len());
        let resources = self.page_resources(page_id);
        let mut page = Page {
            lines: Vec::new(),
            current: String::new(),
            cursor: None,
            operations: 0,
        };
        let mut state = State::default();
        self.run(&content, &resources, &mut state, &mut page, 0)?;
        finish_line(&mut page);
        Ok(paragraphs(&page.lines))
    }

    /// The page's resource dictionaries, nearest first (inherited ones after).
    fn page_resources(&self, page_id: ObjectId) -> Vec<&'a Dictionary> {
        let Ok((direct, ids)) = self.document.get_page_resources(page_id) else {
            return Vec::new();
        };
        let mut out: Vec<&'a Dictionary> = direct.into_iter().collect();
        out.extend(
            ids.into_iter()
                .filter_map(|id| self.document.get_dictionary(id).ok()),
        );
        out
    }

    fn lookup(
        &self,
        resources: &[&'a Dictionary],
        category: &[u8],
        name: &[u8],
    ) -> Option<&'a Object> {
        resources.iter().find_map(|dict| {
            let category = self.deref(dict.get(category).ok()?)?.as_dict().ok()?;
            category.get(name).ok()
        })
    }

    fn deref(&self, object: &'a Object) -> Option<&'a Object> {
        match object {
            Object::Reference(id) => self.document.get_object(*id).ok(),
            other => Some(other),
        }
    }

    fn run(
        &mut self,
        content: &[u8],
        resources: &[&'a Dictionary],
        state: &mut State,
        page: &mut Page,
        depth: usize,
    ) -> Result<(), lopdf::Error> {
        // Streamed: a huge content stream is never held as a vector of operations.
        for operation in Content::decode_iter(content) {
            let operation = operation?;
            page.operations += 1;
            if page.operations > MAX_OPERATIONS {
                break;
            }
            let ops = &operation.operands;
            let number = |i: usize| ops.get(i).and_then(|o| o.as_float().ok()).unwrap_or(0.0);
            match operation.operator.as_str() {
                "q" => state.stack.push(state.ctm),
                "Q" => state.ctm = state.stack.pop().unwrap_or(state.ctm),
                "cm" if ops.len() == 6 => {
                    let m = [
                        number(0),
                        number(1),
                        number(2),
                        number(3),
                        number(4),
                        number(5),
                    ];
                    state.ctm = multiply(&m, &state.ctm);
                }
                "BT" => {
                    state.tm = IDENTITY;
                    state.tlm = IDENTITY;
                }
                "Tf" => {
                    state.size = number(1);
                    state.font = ops
                        .first()
                        .and_then(|o| o.as_name().ok())
                        .and_then(|name| self.font(resources, name));
                }
                "Tc" => state.char_spacing = number(0),
                "Tw" => state.word_spacing = number(0),
                "Tz" => state.scale = number(0) / 100.0,
                "TL" => state.leading = number(0),
                "Td" => move_line(state, number(0), number(1)),
                "TD" => {
                    state.leading = -number(1);
                    move_line(state, number(0), number(1));
                }
                "Tm" if ops.len() == 6 => {
                    state.tm = [
                        number(0),
                        number(1),
                        number(2),
                        number(3),
                        number(4),
                        number(5),
                    ];
                    state.tlm = state.tm;
                }
                "T*" => move_line(state, 0.0, -state.leading),
                "Tj" => {
                    if let Some(Object::String(bytes, _)) = ops.first() {
                        self.show(bytes, state, page);
                    }
                }
                "'" => {
                    move_line(state, 0.0, -state.leading);
                    if let Some(Object::String(bytes, _)) = ops.first() {
                        self.show(bytes, state, page);
                    }
                }
                "\"" => {
                    state.word_spacing = number(0);
                    state.char_spacing = number(1);
                    move_line(state, 0.0, -state.leading);
                    if let Some(Object::String(bytes, _)) = ops.get(2) {
                        self.show(bytes, state, page);
                    }
                }
                "TJ" => {
                    let Some(Object::Array(items)) = ops.first() else {
                        continue;
                    };
                    for item in items {
                        match item {
                            Object::String(bytes, _) => self.show(bytes, state, page),
                            other => {
                                let adjust = other.as_float().unwrap_or(0.0);
                                // A negative kern wider than 0.15 em is how TeX and others write
                                // a word space (justified lines squeeze it to ~0.17 em);
                                // pair kerning stays well below that.
                                if adjust < -150.0
                                    && !page.current.ends_with(' ')
                                    && !page.current.is_empty()
                                {
                                    page.current.push(' ');
                                }
                                let tx = -adjust / 1000.0 * state.size * state.scale;
                                state.tm = multiply(&[1.0, 0.0, 0.0, 1.0, tx, 0.0], &state.tm);
                                if let Some(cursor) = page.cursor.as_mut() {
                                    cursor.x = device(state)[4];
                                }
                            }
                        }
                    }
                }
                "Do" if depth < MAX_FORM_DEPTH => {
                    let Some(name) = ops.first().and_then(|o| o.as_name().ok()) else {
                        continue;
                    };
                    self.form(resources, name, state, page, depth)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Runs a Form XObject's content with its own resources and matrix.
    fn form(
        &mut self,
        resources: &[&'a Dictionary],
        name: &[u8],
        state: &mut State,
        page: &mut Page,
        depth: usize,
    ) -> Result<(), lopdf::Error> {
        let Some(stream) = self
            .lookup(resources, b"XObject", name)
            .and_then(|o| self.deref(o))
        else {
            return Ok(());
        };
        let Ok(stream) = stream.as_stream() else {
            return Ok(());
        };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form".as_slice()) {
            return Ok(());
        }
        let content = match stream.get_plain_content_with_limit(self.limit.min(self.budget)) {
            Ok(content) => content,
            Err(
                error @ lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded {
                    ..
                }),
            ) => {
                return Err(error);
            }
            // A broken form loses its own text, not the page's.
            Err(_) => return Ok(()),
        };
        self.budget = self.budget.saturating_sub(content.len());
        let mut own: Vec<&'a Dictionary> = Vec::new();
        if let Some(dict) = stream
            .dict
            .get(b"Resources")
            .ok()
            .and_then(|o| self.deref(o))
            .and_then(|o| o.as_dict().ok())
        {
            own.push(dict);
        }
        own.extend_from_slice(resources);
        let saved_ctm = state.ctm;
        if let Ok(Object::Array(m)) = stream.dict.get(b"Matrix")
            && m.len() == 6
        {
            let m: Vec<f32> = m.iter().map(|o| o.as_float().unwrap_or(0.0)).collect();
            state.ctm = multiply(&[m[0], m[1], m[2], m[3], m[4], m[5]], &state.ctm);
        }
        let result = self.run(&content, &own, state, page, depth + 1);
        state.ctm = saved_ctm;
        result
    }

    /// The index of a font in the cache, loading it on first use.
    fn font(&mut self, resources: &[&'a Dictionary], name: &[u8]) -> Option<usize> {
        let dict = self
            .deref(self.lookup(resources, b"Font", name)?)?
            .as_dict()
            .ok()?;
        let key = dict as *const Dictionary as usize;
        if let Some(&index) = self.font_index.get(&key) {
            return Some(index);
        }
        let font = self.load_font(dict);
        self.fonts.push(font);
        self.font_index.insert(key, self.fonts.len() - 1);
        Some(self.fonts.len() - 1)
    }

    fn load_font(&self, dict: &'a Dictionary) -> Font<'a> {
        let wide = dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Type0".as_slice());
        let encoding = dict
            .get_font_encoding_with_limit(self.document, self.limit)
            .ok();
        let numbers = |object: Option<&'a Object>| -> Vec<f32> {
            object
                .and_then(|o| self.deref(o))
                .and_then(|o| o.as_array().ok())
                .map(|a| a.iter().map(|o| o.as_float().unwrap_or(0.0)).collect())
                .unwrap_or_default()
        };
        let mut font = Font {
            encoding,
            wide,
            first_char: dict
                .get(b"FirstChar")
                .and_then(Object::as_i64)
                .unwrap_or(0)
                .max(0) as u32,
            widths: numbers(dict.get(b"Widths").ok()),
            cid_widths: Vec::new(),
            default_width: 500.0,
        };
        if wide {
            let descendant = dict
                .get(b"DescendantFonts")
                .ok()
                .and_then(|o| self.deref(o))
                .and_then(|o| o.as_array().ok())
                .and_then(|a| a.first())
                .and_then(|o| self.deref(o))
                .and_then(|o| o.as_dict().ok());
            if let Some(cid) = descendant {
                font.default_width = cid.get(b"DW").and_then(Object::as_float).unwrap_or(1000.0);
                font.cid_widths = cid_widths(cid.get(b"W").ok().and_then(|o| self.deref(o)), self);
                font.cid_widths.sort_by_key(|(first, _, _)| *first);
            }
        }
        font
    }

    /// Decodes and places a shown string.
    fn show(&self, bytes: &[u8], state: &mut State, page: &mut Page) {
        let Some(font) = state.font.and_then(|i| self.fonts.get(i)) else {
            return;
        };
        let text = match &font.encoding {
            Some(encoding) => encoding.bytes_to_string(bytes).unwrap_or_default(),
            None => bytes.iter().map(|&b| char::from(b)).collect(),
        };
        let start = device(state);
        let size = state.size * vertical_scale(&start);
        place(
            page,
            start[4],
            start[5],
            size.abs().max(0.1),
            state.size * horizontal_scale(&start),
        );
        page.current.push_str(&text);
        // Advance by the glyph widths.
        let mut advance = 0.0;
        let codes: Vec<u32> = if font.wide {
            bytes
                .chunks(2)
                .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
                .collect()
        } else {
            bytes.iter().map(|&b| u32::from(b)).collect()
        };
        for code in codes {
            let mut width = font.width(code) / 1000.0 * state.size + state.char_spacing;
            if !font.wide && code == 32 {
                width += state.word_spacing;
            }
            advance += width * state.scale;
        }
        state.tm = multiply(&[1.0, 0.0, 0.0, 1.0, advance, 0.0], &state.tm);
        if let Some(cursor) = page.cursor.as_mut() {
            cursor.x = device(state)[4];
        }
    }
}

/// `/W` of a CID font: `c [w1 w2 ...]` and `cfirst clast w` entries.
fn cid_widths(object: Option<&Object>, reader: &PageReader<'_>) -> Vec<(u32, u32, f32)> {
    let Some(Ok(items)) = object.map(Object::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut index = 0;
    while index < items.len() && out.len() < 65_536 {
        let first = items[index].as_i64().unwrap_or(0).max(0) as u32;
        match items.get(index + 1).and_then(|o| reader.deref(o)) {
            Some(Object::Array(widths)) => {
                for (offset, width) in widths.iter().enumerate() {
                    let code = first + offset as u32;
                    out.push((code, code, width.as_float().unwrap_or(0.0)));
                }
                index += 2;
            }
            Some(last) => {
                let last = last.as_i64().unwrap_or(0).max(0) as u32;
                let width = items
                    .get(index + 2)
                    .and_then(|o| o.as_float().ok())
                    .unwrap_or(0.0);
                out.push((first, last, width));
                index += 3;
            }
            None => break,
        }
    }
    out
}

fn move_line(state: &mut State, tx: f32, ty: f32) {
    state.tlm = multiply(&[1.0, 0.0, 0.0, 1.0, tx, ty], &state.tlm);
    state.tm = state.tlm;
}

/// The text matrix in device space.
fn device(state: &State) -> Matrix {
    let text = multiply(&[state.scale, 0.0, 0.0, 1.0, 0.0, 0.0], &state.tm);
    multiply(&text, &state.ctm)
}

fn vertical_scale(m: &Matrix) -> f32 {
    (m[2] * m[2] + m[3] * m[3]).sqrt()
}

fn horizontal_scale(m: &Matrix) -> f32 {
    (m[0] * m[0] + m[1] * m[1]).sqrt()
}

/// Decides what separates the glyphs about to be shown at (x, y) from the previous ones.
fn place(page: &mut Page, x: f32, y: f32, size: f32, width_scale: f32) {
    match page.cursor.as_ref() {
        None => {}
        Some(cursor) if (y - cursor.y).abs() > 0.5 * size.min(cursor.size) => {
            finish_line(page);
        }
        Some(cursor) => {
            let gap = x - cursor.x;
            let em = width_scale.abs().max(0.1);
            // Same line: a gap wider than a fraction of an em is a word space; a jump far
            // back (a new column at the same height) starts a new line.
            if gap < -4.0 * em {
                finish_line(page);
            } else if gap > 0.15 * em && !page.current.ends_with(' ') && !page.current.is_empty() {
                page.current.push(' ');
            }
        }
    }
    if page.current.is_empty() {
        page.lines.push(Line {
            text: String::new(),
            y,
            size,
        });
    }
    page.cursor = Some(Cursor { x, y, size });
}

fn finish_line(page: &mut Page) {
    if let Some(line) = page.lines.last_mut()
        && line.text.is_empty()
    {
        line.text = std::mem::take(&mut page.current);
    }
    page.current.clear();
}

/// Joins lines into paragraphs: a blank line where the gap to the previous line is clearly
/// wider than the page's usual line gap, or the text size changes (headings).
fn paragraphs(lines: &[Line]) -> String {
    let lines: Vec<&Line> = lines.iter().filter(|l| !l.text.trim().is_empty()).collect();
    let mut gaps: Vec<f32> = lines
        .windows(2)
        .map(|pair| (pair[0].y - pair[1].y).abs())
        .filter(|gap| *gap > 0.0 && gap.is_finite())
        .collect();
    gaps.sort_by(f32::total_cmp);
    // The usual line gap: low in the distribution, since paragraph gaps are the wide ones and a
    // page with few lines has nearly as many of them as of ordinary gaps.
    let usual = gaps
        .get(gaps.len().saturating_sub(1) / 3)
        .copied()
        .unwrap_or(0.0);
    let mut out = String::new();
    for (index, line) in lines.iter().enumerate() {
        if index > 0 {
            let previous = lines[index - 1];
            let gap = (previous.y - line.y).abs();
            let size_change =
                (line.size - previous.size).abs() > 0.15 * previous.size.max(line.size);
            let wide_gap = usual > 0.0 && gap > usual * 1.4;
            let upward = line.y > previous.y + previous.size;
            out.push_str(if wide_gap || size_change || upward {
                "\n\n"
            } else {
                "\n"
            });
        }
        out.push_str(line.text.trim());
    }
    out
}
