//! PPTX: one section per slide in the order of `ppt/presentation.xml` (not file names, which
//! drift as slides are reordered), with the title placeholder as heading, body placeholders as
//! lists, tables as Markdown tables and the speaker notes after the slide's text.

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::ooxml::{attr, core_title, entity, local, relationships, xml_error};
use crate::package::Package;
use crate::sections::SectionBuilder;
use crate::text::{markdown_table, one_line};
use crate::{ExtractError, Extracted, Limits};

const KIND: &str = "PPTX";
const PRESENTATION: &str = "ppt/presentation.xml";

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut package = Package::open(bytes, KIND, limits.max_unpacked_bytes)?;
    let Some(presentation) = package.read_text(PRESENTATION)? else {
        return Err(ExtractError::Corrupt(format!(
            "not a valid PPTX: missing {PRESENTATION}"
        )));
    };
    let rels = relationships(&mut package, KIND, PRESENTATION)?;
    let slide_ids = slide_order(&presentation)?;
    if slide_ids.len() > limits.max_pages as usize {
        return Err(ExtractError::TooLarge(format!(
            "the presentation has {} slides, more than the {} allowed",
            slide_ids.len(),
            limits.max_pages
        )));
    }
    let mut title = core_title(&mut package)?;
    let mut builder = SectionBuilder::new();
    let mut number = 0u32;
    for id in slide_ids {
        let Some(rel) = rels.get(&id) else { continue };
        let Some(xml) = package.read_text(&rel.target)? else {
            continue;
        };
        number += 1;
        let slide = read_slide(&xml, &rel.target)?;
        let notes = notes_of(&mut package, &rel.target)?;
        if title.is_none() {
            title = slide.title.clone();
        }
        builder.reset_headings();
        builder.place(Some(number), Some(format!("Slide {number}")));
        if let Some(slide_title) = &slide.title {
            builder.heading(1, slide_title);
        }
        for block in &slide.blocks {
            builder.block(block);
        }
        if let Some(notes) = notes {
            builder.block(&format!("Notes: {notes}"));
        }
        if !builder.has_text() {
            // A title-only slide (a section divider) still says something.
            if let Some(slide_title) = &slide.title {
                builder.block(slide_title);
            }
        }
    }
    Ok(Extracted {
        title,
        sections: builder.finish(),
    })
}

/// The relationship ids of the slides, in presentation order.
fn slide_order(xml: &str) -> Result<Vec<String>, ExtractError> {
    let mut reader = Reader::from_str(xml);
    let mut ids = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if local(&e) == "sldId" => {
                if let Some(id) = rel_id(&e) {
                    ids.push(id);
                }
            }
            Ok(Event::Eof) => break,
            Err(error) => return Err(xml_error(KIND, PRESENTATION, &error)),
            Ok(_) => {}
        }
    }
    Ok(ids)
}

/// The `r:id` attribute (the plain `id` of `sldId` is a number, not the relationship).
fn rel_id(e: &quick_xml::events::BytesStart<'_>) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.0.ends_with(":id") && a.key.0 != "id")
        .map(|a| a.value.into_owned())
}

#[derive(Default)]
struct Slide {
    title: Option<String>,
    blocks: Vec<String>,
}

/// What kind of text a shape holds.
#[derive(Clone, Copy, PartialEq)]
enum ShapeKind {
    Title,
    /// A body placeholder: its paragraphs are bullets unless they say `buNone`.
    Body,
    /// A free text box or subtitle: paragraphs.
    Plain,
    /// Date, footer, slide-number and slide-image placeholders: boilerplate.
    Skip,
}

/// A paragraph being read: text, indent level, bullet or not.
struct Para {
    text: String,
    level: u8,
    bullet: Option<bool>,
}

fn read_slide(xml: &str, part: &str) -> Result<Slide, ExtractError> {
    let mut reader = Reader::from_str(xml);
    let mut slide = Slide::default();
    let mut shape = ShapeKind::Plain;
    let mut paragraphs: Vec<Para> = Vec::new();
    let mut current: Option<Para> = None;
    let mut in_text = false;
    let mut table: Option<Vec<Vec<String>>> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|error| xml_error(KIND, part, &error))?;
        match event {
            Event::Start(e) | Event::Empty(e)
                if !matches!(local(&e), "t" | "p" | "tbl" | "tr" | "tc") =>
            {
                match local(&e) {
                    "sp" => {
                        shape = ShapeKind::Plain;
                        paragraphs.clear();
                    }
                    "ph" => {
                        shape = match attr(&e, "type").as_deref() {
                            Some("title" | "ctrTitle") => ShapeKind::Title,
                            Some("subTitle") => ShapeKind::Plain,
                            Some("body" | "obj") | None => ShapeKind::Body,
                            // Date, footer and slide-number placeholders are boilerplate.
                            Some(_) => ShapeKind::Skip,
                        };
                    }
                    "pPr" => {
                        if let Some(p) = current.as_mut() {
                            p.level = attr(&e, "lvl").and_then(|v| v.parse().ok()).unwrap_or(0);
                        }
                    }
                    "buNone" => {
                        if let Some(p) = current.as_mut() {
                            p.bullet = Some(false);
                        }
                    }
                    "buChar" | "buAutoNum" | "buBlip" => {
                        if let Some(p) = current.as_mut() {
                            p.bullet = Some(true);
                        }
                    }
                    "br" => {
                        if let Some(p) = current.as_mut() {
                            p.text.push('\n');
                        }
                    }
                    _ => {}
                }
            }
            Event::Start(e) => match local(&e) {
                "p" => {
                    current = Some(Para {
                        text: String::new(),
                        level: 0,
                        bullet: None,
                    })
                }
                "t" => in_text = true,
                "tbl" => table = Some(Vec::new()),
                "tr" => {
                    if let Some(rows) = table.as_mut() {
                        rows.push(Vec::new());
                    }
                }
                "tc" => {
                    if let Some(row) = table.as_mut().and_then(|rows| rows.last_mut()) {
                        row.push(String::new());
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_text => {
                if let Some(p) = current.as_mut() {
                    p.text.push_str(&t);
                }
            }
            Event::GeneralRef(r) if in_text => {
                if let (Some(p), Some(text)) = (current.as_mut(), entity(&r)) {
                    p.text.push_str(&text);
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => {
                    let Some(p) = current.take() else { continue };
                    if let Some(cell) = table
                        .as_mut()
                        .and_then(|r| r.last_mut())
                        .and_then(|c| c.last_mut())
                    {
                        if !cell.is_empty() {
                            cell.push(' ');
                        }
                        cell.push_str(&one_line(&p.text));
                    } else if !p.text.trim().is_empty() {
                        paragraphs.push(p);
                    }
                }
                "tbl" => {
                    if let Some(rows) = table.take() {
                        let rows: Vec<Vec<String>> = rows
                            .into_iter()
                            .filter(|r| r.iter().any(|c| !c.trim().is_empty()))
                            .collect();
                        if !rows.is_empty() {
                            slide.blocks.push(markdown_table(&rows));
                        }
                    }
                }
                "sp" => {
                    shape_end(&mut slide, shape, std::mem::take(&mut paragraphs));
                    shape = ShapeKind::Plain;
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(slide)
}

fn shape_end(slide: &mut Slide, shape: ShapeKind, paragraphs: Vec<Para>) {
    if paragraphs.is_empty() {
        return;
    }
    match shape {
        ShapeKind::Skip => {}
        ShapeKind::Title => {
            let text = one_line(
                &paragraphs
                    .iter()
                    .map(|p| p.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            if slide.title.is_none() && !text.is_empty() {
                slide.title = Some(text);
            } else if !text.is_empty() {
                slide.blocks.push(text);
            }
        }
        ShapeKind::Body | ShapeKind::Plain => {
            let mut lines = Vec::new();
            for p in paragraphs {
                let bullet = p.bullet.unwrap_or(shape == ShapeKind::Body);
                let text = p.text.trim().replace('\n', " ");
                if bullet {
                    lines.push(format!(
                        "{}- {}",
                        "  ".repeat(usize::from(p.level.min(8))),
                        text
                    ));
                } else {
                    lines.push(format!("{text}\n"));
                }
            }
            slide.blocks.push(lines.join("\n").trim_end().to_string());
        }
    }
}

/// The speaker notes of a slide, from its notes slide's body placeholder.
fn notes_of(package: &mut Package<'_>, slide_part: &str) -> Result<Option<String>, ExtractError> {
    let rels = relationships(package, KIND, slide_part)?;
    let Some(rel) = rels.values().find(|r| r.kind == "notesSlide") else {
        return Ok(None);
    };
    let Some(xml) = package.read_text(&rel.target)? else {
        return Ok(None);
    };
    let notes = read_slide(&xml, &rel.target)?;
    let text = notes
        .blocks
        .join("\n")
        .lines()
        .map(|l| l.trim_start_matches("- "))
        .collect::<Vec<_>>()
        .join(" ");
    let text = one_line(&text);
    Ok((!text.is_empty()).then_some(text))
}
