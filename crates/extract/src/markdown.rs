//! Markdown: the source is kept as written (it already is the section format); pulldown-cmark
//! only finds the top-level headings, which cut it into sections, and the front matter, which
//! is dropped but gives the title.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use crate::sections::SectionBuilder;
use crate::text::{decode, one_line};
use crate::{ExtractError, Extracted};

pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let source = decode(bytes);
    // Normalise line ends first so that byte offsets and slices agree.
    let source = source.replace("\r\n", "\n");
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS;
    let mut builder = SectionBuilder::new();
    let mut cursor = 0usize;
    let mut containers = 0usize;
    let mut heading: Option<(u8, usize, String)> = None;
    let mut metadata: Option<String> = None;
    let mut front_title = None;
    let mut first_h1 = None;
    for (event, range) in Parser::new_ext(&source, options).into_offset_iter() {
        match event {
            Event::Start(
                Tag::BlockQuote(_) | Tag::List(_) | Tag::Item | Tag::FootnoteDefinition(_),
            ) => {
                containers += 1;
            }
            Event::End(
                TagEnd::BlockQuote(_) | TagEnd::List(_) | TagEnd::Item | TagEnd::FootnoteDefinition,
            ) => {
                containers = containers.saturating_sub(1);
            }
            // Headings inside quotes and lists stay part of their text.
            Event::Start(Tag::Heading { level, .. }) if containers == 0 => {
                builder.block(source.get(cursor..range.start).unwrap_or_default());
                heading = Some((level as u8, range.end, String::new()));
            }
            Event::End(TagEnd::Heading(_)) if containers == 0 => {
                if let Some((level, end, text)) = heading.take() {
                    let text = one_line(&text);
                    if level == 1 && first_h1.is_none() {
                        first_h1 = Some(text.clone());
                    }
                    builder.heading(level, &text);
                    cursor = end.max(range.end);
                }
            }
            Event::Text(text) | Event::Code(text) | Event::InlineMath(text) => {
                if let Some((_, _, heading_text)) = heading.as_mut() {
                    heading_text.push_str(&text);
                } else if let Some(meta) = metadata.as_mut() {
                    meta.push_str(&text);
                }
            }
            Event::Start(Tag::MetadataBlock(_)) => {
                builder.block(source.get(cursor..range.start).unwrap_or_default());
                metadata = Some(String::new());
            }
            Event::End(TagEnd::MetadataBlock(_)) => {
                if let Some(meta) = metadata.take() {
                    front_title = front_matter_title(&meta);
                }
                cursor = range.end;
            }
            _ => {}
        }
    }
    builder.block(source.get(cursor..).unwrap_or_default());
    Ok(Extracted {
        title: front_title.or(first_h1),
        sections: builder.finish(),
    })
}

/// `title: ...` (YAML) or `title = "..."` (TOML) from front matter.
fn front_matter_title(meta: &str) -> Option<String> {
    meta.lines().find_map(|line| {
        let rest = line.strip_prefix("title")?.trim_start();
        let value = rest.strip_prefix(':').or_else(|| rest.strip_prefix('='))?;
        let value = one_line(value.trim().trim_matches(['"', '\'']));
        (!value.is_empty()).then_some(value)
    })
}
