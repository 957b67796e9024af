//! The section builder every structured format feeds: headings open sections, blocks of text
//! fill them, and the heading path is kept as a stack of (level, text).

use crate::Section;
use crate::text::normalize;

/// Collects blocks of Markdown-flavoured text into [`Section`]s, starting a new section at every
/// heading (and whenever the page or label changes).
#[derive(Default)]
pub(crate) struct SectionBuilder {
    headings: Vec<(u8, String)>,
    page: Option<u32>,
    label: Option<String>,
    text: String,
    sections: Vec<Section>,
    /// Headings seen so far in document order, for a document that has nothing but headings.
    heading_texts: Vec<String>,
}

impl SectionBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Opens a heading of `level` (1 = outermost): closes the current section and replaces
    /// every heading at this level or deeper.
    pub(crate) fn heading(&mut self, level: u8, text: &str) {
        let text = crate::text::one_line(text);
        if text.is_empty() {
            return;
        }
        self.flush();
        while self.headings.last().is_some_and(|(open, _)| *open >= level) {
            self.headings.pop();
        }
        self.heading_texts.push(text.clone());
        self.headings.push((level, text));
    }

    /// Starts a new section on `page` with `label`, keeping the heading path.
    pub(crate) fn place(&mut self, page: Option<u32>, label: Option<String>) {
        if page != self.page || label != self.label {
            self.flush();
            self.page = page;
            self.label = label;
        }
    }

    /// Forgets the heading path (a new slide or sheet starts afresh).
    pub(crate) fn reset_headings(&mut self) {
        self.flush();
        self.headings.clear();
    }

    /// Appends a block (paragraph, list, table, fenced code), separated by a blank line.
    pub(crate) fn block(&mut self, block: &str) {
        if block.trim().is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        self.text.push_str(block);
    }

    /// Appends a line to the current block (list items, consecutive rows).
    pub(crate) fn line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(line);
    }

    /// True when the current section has text not yet flushed.
    pub(crate) fn has_text(&self) -> bool {
        !self.text.trim().is_empty()
    }

    /// Closes the current section, if it has any text.
    pub(crate) fn flush(&mut self) {
        if self.text.trim().is_empty() {
            self.text.clear();
            return;
        }
        let text = normalize(&std::mem::take(&mut self.text));
        self.sections.push(Section {
            heading_path: self.headings.iter().map(|(_, text)| text.clone()).collect(),
            page: self.page,
            label: self.label.clone(),
            text,
        });
    }

    /// The sections; a document of nothing but headings still gives its headings as text.
    pub(crate) fn finish(mut self) -> Vec<Section> {
        self.flush();
        if self.sections.is_empty() && !self.heading_texts.is_empty() {
            let text = self.heading_texts.join("\n\n");
            self.headings.clear();
            self.block(&text);
            self.flush();
        }
        self.sections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_path_follows_levels() {
        let mut builder = SectionBuilder::new();
        builder.block("intro");
        builder.heading(1, "Guide");
        builder.heading(2, "Install");
        builder.block("run it");
        builder.heading(3, "Linux");
        builder.block("apt");
        builder.heading(2, "Use");
        builder.block("call it");
        let sections = builder.finish();
        let paths: Vec<(Vec<String>, String)> = sections
            .into_iter()
            .map(|s| (s.heading_path, s.text))
            .collect();
        assert_eq!(
            paths,
            vec![
                (vec![], "intro".to_string()),
                (
                    vec!["Guide".to_string(), "Install".to_string()],
                    "run it".to_string()
                ),
                (
                    vec!["Guide".into(), "Install".into(), "Linux".into()],
                    "apt".to_string()
                ),
                (
                    vec!["Guide".to_string(), "Use".to_string()],
                    "call it".to_string()
                ),
            ]
        );
    }
}
