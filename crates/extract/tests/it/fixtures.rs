//! Small real documents made at test time: DOCX, PPTX and XLSX written as zip + XML, PDFs built
//! with lopdf (text pages, encrypted, image-only), and the hostile ones (zip bombs, truncations).

use std::io::{Cursor, Write};

use lopdf::content::{Content, Operation};
use lopdf::{
    Document, EncryptionState, EncryptionVersion, Object, Permissions, Stream, dictionary,
};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// A zip of `(name, content)` members, deflated.
pub fn zip(members: &[(&str, &str)]) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, content) in members {
        writer.start_file(*name, options).unwrap();
        writer.write_all(content.as_bytes()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main""#;

/// A DOCX whose body is `body` (WordprocessingML paragraphs and tables).
pub fn docx(body: &str) -> Vec<u8> {
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {W}><w:body>{body}<w:sectPr/></w:body></w:document>"#
    );
    // A German Word names its heading style id "berschrift1"; the name says "heading 1".
    let styles = format!(
        r#"<?xml version="1.0"?><w:styles {W}>
        <w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/></w:style>
        <w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style>
        <w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style>
        <w:style w:type="paragraph" w:styleId="SourceCode"><w:name w:val="Source Code"/></w:style>
        </w:styles>"#
    );
    zip(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", ROOT_RELS),
        ("word/document.xml", &document),
        ("word/styles.xml", &styles),
        ("docProps/core.xml", &core("Quarterly Report")),
    ])
}

pub fn p(style: Option<&str>, text: &str) -> String {
    let style = style
        .map(|s| format!(r#"<w:pPr><w:pStyle w:val="{s}"/></w:pPr>"#))
        .unwrap_or_default();
    format!(r#"<w:p>{style}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>"#)
}

pub fn list_item(level: u8, text: &str) -> String {
    format!(
        r#"<w:p><w:pPr><w:pStyle w:val="ListParagraph"/><w:numPr><w:ilvl w:val="{level}"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>{text}</w:t></w:r></w:p>"#
    )
}

pub fn table(rows: &[&[&str]]) -> String {
    let mut xml = String::from("<w:tbl><w:tblPr/>");
    for row in rows {
        xml.push_str("<w:tr>");
        for cell in *row {
            xml.push_str(&format!("<w:tc><w:tcPr/>{}</w:tc>", p(None, cell)));
        }
        xml.push_str("</w:tr>");
    }
    xml.push_str("</w:tbl>");
    xml
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#;
const ROOT_RELS: &str = r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"/>"#;

fn core(title: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title></cp:coreProperties>"#
    )
}

const P: &str = r#"xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships""#;

pub struct SlideSpec<'a> {
    pub title: &'a str,
    pub bullets: &'a [&'a str],
    pub notes: Option<&'a str>,
}

/// A PPTX whose slides are stored in reverse file order (slideN.xml first), so the test sees
/// that presentation order, not file names, decides.
pub fn pptx(slides: &[SlideSpec<'_>]) -> Vec<u8> {
    let count = slides.len();
    let mut members: Vec<(String, String)> = Vec::new();
    let mut ids = String::new();
    let mut rels = String::new();
    for (index, slide) in slides.iter().enumerate() {
        let file_number = count - index;
        ids.push_str(&format!(
            r#"<p:sldId id="{}" r:id="rId{}"/>"#,
            256 + index,
            index + 10
        ));
        rels.push_str(&format!(
            r#"<Relationship Id="rId{}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/slide{file_number}.xml"/>"#,
            index + 10
        ));
        let bullets: String = slide
            .bullets
            .iter()
            .map(|b| {
                format!(
                    r#"<a:p><a:pPr lvl="0"/><a:r><a:rPr lang="en-US"/><a:t>{b}</a:t></a:r></a:p>"#
                )
            })
            .collect();
        let xml = format!(
            r#"<?xml version="1.0"?><p:sld {P}><p:cSld><p:spTree>
            <p:sp><p:nvSpPr><p:cNvPr id="2" name="Title"/><p:cNvSpPr/><p:nvPr><p:ph type="title"/></p:nvPr></p:nvSpPr><p:txBody><a:bodyPr/><a:p><a:r><a:t>{title}</a:t></a:r></a:p></p:txBody></p:sp>
            <p:sp><p:nvSpPr><p:cNvPr id="3" name="Body"/><p:cNvSpPr/><p:nvPr><p:ph idx="1"/></p:nvPr></p:nvSpPr><p:txBody><a:bodyPr/>{bullets}</p:txBody></p:sp>
            <p:sp><p:nvSpPr><p:cNvPr id="4" name="Slide number"/><p:cNvSpPr/><p:nvPr><p:ph type="sldNum"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>{file_number}</a:t></a:r></a:p></p:txBody></p:sp>
            </p:spTree></p:cSld></p:sld>"#,
            title = slide.title
        );
        members.push((format!("ppt/slides/slide{file_number}.xml"), xml));
        if let Some(notes) = slide.notes {
            members.push((
                format!("ppt/slides/_rels/slide{file_number}.xml.rels"),
                format!(
                    r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/notesSlide" Target="../notesSlides/notesSlide{file_number}.xml"/></Relationships>"#
                ),
            ));
            members.push((
                format!("ppt/notesSlides/notesSlide{file_number}.xml"),
                format!(
                    r#"<?xml version="1.0"?><p:notes {P}><p:cSld><p:spTree><p:sp><p:nvSpPr><p:cNvPr id="2" name="Notes"/><p:cNvSpPr/><p:nvPr><p:ph type="body" idx="1"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>{notes}</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:notes>"#
                ),
            ));
        }
    }
    members.push((
        "ppt/presentation.xml".to_string(),
        format!(r#"<?xml version="1.0"?><p:presentation {P}><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>"#),
    ));
    members.push((
        "ppt/_rels/presentation.xml.rels".to_string(),
        format!(r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#),
    ));
    members.push(("[Content_Types].xml".to_string(), CONTENT_TYPES.to_string()));
    let refs: Vec<(&str, &str)> = members
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    zip(&refs)
}

/// An XLSX with the given sheets of inline-string / number cells (numbers parse as numbers).
pub fn xlsx(sheets: &[(&str, Vec<Vec<String>>)]) -> Vec<u8> {
    let sheets: Vec<(&str, String)> = sheets
        .iter()
        .map(|(name, rows)| {
            let mut data = String::new();
            for (r, row) in rows.iter().enumerate() {
                data.push_str(&format!(r#"<row r="{}">"#, r + 1));
                for (c, cell) in row.iter().enumerate() {
                    data.push_str(&cell_xml(
                        &format!("{}{}", (b'A' + c as u8) as char, r + 1),
                        cell,
                    ));
                }
                data.push_str("</row>");
            }
            (*name, data)
        })
        .collect();
    xlsx_raw(&sheets)
}

/// One cell's XML: a number if it parses as one, else an inline string.
pub fn cell_xml(reference: &str, value: &str) -> String {
    if value.parse::<f64>().is_ok() {
        format!(r#"<c r="{reference}"><v>{value}</v></c>"#)
    } else {
        format!(r#"<c r="{reference}" t="inlineStr"><is><t>{value}</t></is></c>"#)
    }
}

/// An XLSX whose sheets have the given `<sheetData>` content.
pub fn xlsx_raw(sheets: &[(&str, String)]) -> Vec<u8> {
    let mut members: Vec<(String, String)> = Vec::new();
    let mut sheet_list = String::new();
    let mut rels = String::new();
    let mut types = String::new();
    for (index, (name, data)) in sheets.iter().enumerate() {
        let n = index + 1;
        sheet_list.push_str(&format!(
            r#"<sheet name="{name}" sheetId="{n}" r:id="rId{n}"/>"#
        ));
        rels.push_str(&format!(
            r#"<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>"#
        ));
        types.push_str(&format!(
            r#"<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#
        ));
        members.push((
            format!("xl/worksheets/sheet{n}.xml"),
            format!(
                r#"<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{data}</sheetData></worksheet>"#
            ),
        ));
    }
    members.push((
        "xl/workbook.xml".to_string(),
        format!(
            r#"<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>{sheet_list}</sheets></workbook>"#
        ),
    ));
    members.push((
        "xl/_rels/workbook.xml.rels".to_string(),
        format!(r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#),
    ));
    members.push((
        "[Content_Types].xml".to_string(),
        format!(
            r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>{types}</Types>"#
        ),
    ));
    members.push((
        "_rels/.rels".to_string(),
        r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_string(),
    ));
    let refs: Vec<(&str, &str)> = members
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    zip(&refs)
}

/// A zip whose `member` inflates to `size` zero bytes (about a thousandth of that packed),
/// written by streaming so the test never holds the inflated bytes. With `lie`, the sizes in
/// the headers are rewritten to 1,000 bytes, as a hostile file would.
pub fn zip_bomb(member: &str, size: u64, lie: bool) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(9))
        .large_file(size >= u64::from(u32::MAX));
    writer.start_file("[Content_Types].xml", options).unwrap();
    writer.write_all(CONTENT_TYPES.as_bytes()).unwrap();
    writer.start_file(member, options).unwrap();
    let block = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < size {
        let n = (size - written).min(block.len() as u64) as usize;
        writer.write_all(&block[..n]).unwrap();
        written += n as u64;
    }
    let mut bytes = writer.finish().unwrap().into_inner();
    if lie {
        patch_sizes(&mut bytes, member);
    }
    bytes
}

/// Rewrites the uncompressed size of `member` in its local header and central directory entry.
fn patch_sizes(bytes: &mut [u8], member: &str) {
    let name = member.as_bytes();
    let mut at = 0;
    while at + 46 < bytes.len() {
        if bytes[at..].starts_with(b"PK\x03\x04") {
            let name_len = u16::from_le_bytes([bytes[at + 26], bytes[at + 27]]) as usize;
            if &bytes[at + 30..at + 30 + name_len] == name {
                bytes[at + 22..at + 26].copy_from_slice(&1000u32.to_le_bytes());
            }
        }
        if bytes[at..].starts_with(b"PK\x01\x02") {
            let name_len = u16::from_le_bytes([bytes[at + 28], bytes[at + 29]]) as usize;
            if &bytes[at + 46..at + 46 + name_len] == name {
                bytes[at + 24..at + 28].copy_from_slice(&1000u32.to_le_bytes());
            }
        }
        at += 1;
    }
}

/// A PDF whose pages hold the given lines (Helvetica, one `Tj` per line, 14 pt apart), a
/// title in its info dictionary.
pub fn pdf(pages: &[Vec<String>]) -> Document {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let mut kids = Vec::new();
    for lines in pages {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 11.into()]),
        ];
        operations.push(Operation::new("Td", vec![72.into(), 760.into()]));
        for line in lines {
            if line.is_empty() {
                // A paragraph gap: one extra line of space.
                operations.push(Operation::new("Td", vec![0.into(), (-14).into()]));
                continue;
            }
            operations.push(Operation::new(
                "Tj",
                vec![Object::string_literal(encode_win_ansi(line))],
            ));
            operations.push(Operation::new("Td", vec![0.into(), (-14).into()]));
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations };
        let content_id = doc.add_object(
            Stream::new(dictionary! {}, content.encode().unwrap()).with_compression(true),
        );
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count, "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    let info_id =
        doc.add_object(dictionary! { "Title" => Object::string_literal("Generated Handbook") });
    doc.trailer.set("Root", catalog_id);
    doc.trailer.set("Info", info_id);
    doc.compress();
    doc
}

fn encode_win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| if (c as u32) < 256 { c as u8 } else { b'?' })
        .collect()
}

pub fn save(doc: &mut Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// `doc` encrypted (RC4 128) with the given passwords.
pub fn encrypt(mut doc: Document, user_password: &str) -> Vec<u8> {
    if doc.trailer.get(b"ID").is_err() {
        let id = Object::String(
            b"0123456789abcdef".to_vec(),
            lopdf::StringFormat::Hexadecimal,
        );
        doc.trailer.set("ID", vec![id.clone(), id]);
    }
    let version = EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner-secret",
        user_password,
        key_length: 128,
        permissions: Permissions::all(),
    };
    let state = EncryptionState::try_from(version).unwrap();
    doc.encrypt(&state).unwrap();
    save(&mut doc)
}

/// A one-page PDF that only paints a rectangle: what a scan without OCR looks like to a text
/// extractor.
pub fn pdf_without_text() -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let content = Content {
        operations: vec![
            Operation::new("re", vec![10.into(), 10.into(), 500.into(), 700.into()]),
            Operation::new("f", vec![]),
        ],
    };
    let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
    let page_id = doc.add_object(
        dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id },
    );
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    save(&mut doc)
}

/// Deterministic pseudo-random bytes (xorshift), for "random bytes with the right extension".
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A one-page PDF whose text is drawn inside a Form XObject, as some generators do.
pub fn pdf_with_form(text: &str) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(
        dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica" },
    );
    let form = Content {
        operations: vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![0.into(), 0.into()]),
            Operation::new(
                "TJ",
                vec![Object::Array(vec![
                    Object::string_literal("Inside"),
                    Object::Integer(-300),
                    Object::string_literal("a"),
                    Object::Integer(-20),
                    Object::string_literal("form"),
                ])],
            ),
            Operation::new("Tj", vec![Object::string_literal(text)]),
            Operation::new("ET", vec![]),
        ],
    };
    let form_id = doc.add_object(Stream::new(
        dictionary! {
            "Type" => "XObject", "Subtype" => "Form", "BBox" => vec![0.into(), 0.into(), 500.into(), 100.into()],
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
            "Matrix" => vec![1.into(), 0.into(), 0.into(), 1.into(), 50.into(), 700.into()],
        },
        form.encode().unwrap(),
    ));
    let page = Content {
        operations: vec![Operation::new("Do", vec!["Fm1".into()])],
    };
    let content_id = doc.add_object(Stream::new(dictionary! {}, page.encode().unwrap()));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
        "Resources" => dictionary! { "XObject" => dictionary! { "Fm1" => form_id } },
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    save(&mut doc)
}

/// A one-page PDF whose content stream inflates to `size` bytes of spaces.
pub fn pdf_stream_bomb(size: usize) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let content_id =
        doc.add_object(Stream::new(dictionary! {}, vec![b' '; size]).with_compression(true));
    let page_id = doc.add_object(
        dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id },
    );
    doc.objects.insert(
        pages_id,
        Object::Dictionary(
            dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1 },
        ),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    doc.compress();
    save(&mut doc)
}
