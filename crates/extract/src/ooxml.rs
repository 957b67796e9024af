//! What DOCX and PPTX share: XML event helpers over quick-xml, relationship files and the
//! title in `docProps/core.xml`.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesRef, BytesStart, Event};

use crate::ExtractError;
use crate::package::Package;

/// The value of the attribute whose local name is `name` (prefixes such as `w:` ignored).
pub(crate) fn attr(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .map(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|value| value.into_owned())
                .unwrap_or_else(|_| a.value.into_owned())
        })
}

/// The local name of an element (`w:p` → `p`).
pub(crate) fn local<'e>(element: &'e BytesStart<'_>) -> &'e str {
    let name = element.name();
    let full: &'e str = name.0;
    full.rsplit(':').next().unwrap_or(full)
}

/// The text an entity reference stands for (`&amp;` → `&`, `&#x4E2D;` → `中`).
pub(crate) fn entity(reference: &BytesRef<'_>) -> Option<String> {
    if let Ok(Some(c)) = reference.resolve_char_ref() {
        return Some(c.to_string());
    }
    quick_xml::escape::resolve_predefined_entity(reference).map(str::to_string)
}

/// An XML parse error as a corrupt-file message naming the part.
pub(crate) fn xml_error(kind: &str, part: &str, error: &quick_xml::Error) -> ExtractError {
    ExtractError::Corrupt(format!(
        "not a valid {kind}: {part} is not well-formed XML ({error})"
    ))
}

/// A relationship: its type's last path segment ("slide", "notesSlide") and its resolved target.
pub(crate) struct Relationship {
    pub kind: String,
    pub target: String,
}

/// Reads the relationships of `part` (`ppt/presentation.xml` → `ppt/_rels/presentation.xml.rels`)
/// with targets resolved to package paths.
pub(crate) fn relationships(
    package: &mut Package<'_>,
    kind: &str,
    part: &str,
) -> Result<HashMap<String, Relationship>, ExtractError> {
    let (dir, file) = part.rsplit_once('/').unwrap_or(("", part));
    let rels_path = if dir.is_empty() {
        format!("_rels/{file}.rels")
    } else {
        format!("{dir}/_rels/{file}.rels")
    };
    let Some(xml) = package.read_text(&rels_path)? else {
        return Ok(HashMap::new());
    };
    let mut reader = Reader::from_str(&xml);
    let mut out = HashMap::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if local(&e) == "Relationship" => {
                if attr(&e, "TargetMode").as_deref() == Some("External") {
                    continue;
                }
                if let (Some(id), Some(target)) = (attr(&e, "Id"), attr(&e, "Target")) {
                    let rel_type = attr(&e, "Type").unwrap_or_default();
                    let kind = rel_type.rsplit('/').next().unwrap_or_default().to_string();
                    out.insert(
                        id,
                        Relationship {
                            kind,
                            target: resolve(dir, &target),
                        },
                    );
                }
            }
            Ok(Event::Eof) => break,
            Err(error) => return Err(xml_error(kind, &rels_path, &error)),
            Ok(_) => {}
        }
    }
    Ok(out)
}

/// Resolves a relationship target against the directory of its source part.
fn resolve(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if let Some(absolute) = target.strip_prefix('/') {
        return absolute.to_string();
    } else {
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// The document title from `docProps/core.xml` (`dc:title`), if set.
pub(crate) fn core_title(package: &mut Package<'_>) -> Result<Option<String>, ExtractError> {
    let Some(xml) = package.read_text("docProps/core.xml")? else {
        return Ok(None);
    };
    let mut reader = Reader::from_str(&xml);
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if local(&e) == "title" => in_title = true,
            Ok(Event::End(e)) if e.local_name().as_ref() == "title" => in_title = false,
            Ok(Event::Text(t)) if in_title => title.push_str(&t),
            Ok(Event::GeneralRef(r)) if in_title => title.push_str(&entity(&r).unwrap_or_default()),
            // A broken metadata part is not worth refusing the document for.
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let title = crate::text::one_line(&title);
    Ok((!title.is_empty()).then_some(title))
}

#[cfg(test)]
mod tests {
    #[test]
    fn resolve_targets() {
        assert_eq!(
            super::resolve("ppt", "slides/slide1.xml"),
            "ppt/slides/slide1.xml"
        );
        assert_eq!(
            super::resolve("ppt/slides", "../notesSlides/n1.xml"),
            "ppt/notesSlides/n1.xml"
        );
        assert_eq!(
            super::resolve("ppt", "/ppt/slides/slide2.xml"),
            "ppt/slides/slide2.xml"
        );
    }
}
