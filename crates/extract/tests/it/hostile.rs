//! Bad input: each case returns the right error with a message a user can act on, quickly, and
//! never panics or hangs.

use std::time::{Duration, Instant};

use tale_extract::{ExtractError, Extracted, Format, Limits, extract};

use crate::fixtures;

/// Runs `extract` and checks that it came back within a few seconds.
fn timed(format: Format, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let start = Instant::now();
    let result = extract(&format, bytes, limits);
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "{format:?} took {elapsed:?}"
    );
    result
}

fn error(format: Format, bytes: &[u8]) -> ExtractError {
    match timed(format.clone(), bytes, &Limits::default()) {
        Ok(extracted) => panic!("{format:?} should fail, got {extracted:#?}"),
        Err(error) => error,
    }
}

#[test]
fn encrypted_pdf_asks_to_remove_the_password() {
    let doc = fixtures::pdf(&[vec!["Top secret.".to_string()]]);
    let error = error(Format::Pdf, &fixtures::encrypt(doc, "user-secret"));
    assert!(matches!(error, ExtractError::Encrypted), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the file is encrypted (password-protected): open it, remove the password, save it and upload it again"
    );
}

#[test]
fn password_protected_office_file_is_encrypted() {
    // Office saves a password-protected DOCX/XLSX as an OLE container holding the encrypted
    // package; its EncryptionInfo stream names it.
    let mut bytes = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec();
    bytes.extend(fixtures::noise(4096, 7));
    bytes.extend("EncryptionInfo".encode_utf16().flat_map(u16::to_le_bytes));
    assert!(matches!(
        error(Format::Docx, &bytes),
        ExtractError::Encrypted
    ));
    assert!(matches!(
        error(Format::Pptx, &bytes),
        ExtractError::Encrypted
    ));
    assert!(matches!(
        error(Format::Spreadsheet, &bytes),
        ExtractError::Encrypted
    ));
}

#[test]
fn scanned_pdf_has_no_text_layer() {
    let error = error(Format::Pdf, &fixtures::pdf_without_text());
    assert!(matches!(error, ExtractError::NoTextLayer), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("the PDF has no text layer (is it a scan?)")
    );
}

#[test]
fn corrupt_pdfs() {
    let random = error(Format::Pdf, &fixtures::noise(100_000, 1));
    assert!(matches!(random, ExtractError::Corrupt(_)), "{random:?}");
    assert!(
        random
            .to_string()
            .starts_with("not a valid PDF: the file does not start like a PDF"),
        "{random}"
    );

    let mut garbage = b"%PDF-1.7\n".to_vec();
    garbage.extend(fixtures::noise(100_000, 2));
    let garbage = error(Format::Pdf, &garbage);
    assert!(matches!(garbage, ExtractError::Corrupt(_)), "{garbage:?}");
    assert!(
        garbage
            .to_string()
            .contains("the file may be damaged or incomplete"),
        "{garbage}"
    );

    // Cut in the middle of the page objects: the pages that survive are read (lopdf rebuilds
    // the cross-reference table), or it is reported as damaged — never a panic.
    let pages: Vec<Vec<String>> = (1..=20).map(|n| vec![format!("Page {n} text.")]).collect();
    let mut doc = fixtures::pdf(&pages);
    let bytes = fixtures::save(&mut doc);
    for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 40] {
        match timed(Format::Pdf, &bytes[..cut], &Limits::default()) {
            Ok(extracted) => assert!(
                extracted
                    .sections
                    .iter()
                    .all(|s| s.text.starts_with("Page "))
            ),
            Err(error) => assert!(
                matches!(error, ExtractError::Corrupt(_) | ExtractError::NoTextLayer),
                "{error:?}"
            ),
        }
    }
}

#[test]
fn pdf_page_limit() {
    let pages: Vec<Vec<String>> = (1..=5).map(|n| vec![format!("Page {n}.")]).collect();
    let mut doc = fixtures::pdf(&pages);
    let limits = Limits {
        max_pages: 3,
        ..Limits::default()
    };
    let error = timed(Format::Pdf, &fixtures::save(&mut doc), &limits).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the PDF has 5 pages, more than the 3 allowed; split the document into smaller files and upload them separately"
    );
}

#[test]
fn corrupt_office_files() {
    let docx = fixtures::docx(&fixtures::p(None, "Hello"));
    let truncated = error(Format::Docx, &docx[..docx.len() / 2]);
    assert!(
        matches!(truncated, ExtractError::Corrupt(_)),
        "{truncated:?}"
    );
    assert!(
        truncated.to_string().starts_with("not a valid DOCX"),
        "{truncated}"
    );

    let random = error(Format::Docx, &fixtures::noise(50_000, 3));
    assert_eq!(
        random.to_string(),
        "not a valid DOCX: the file is not a zip container, which every DOCX is; the file may be damaged or incomplete: save or download it again and upload it again"
    );

    let not_word = fixtures::zip(&[("hello.txt", "hi")]);
    assert_eq!(
        error(Format::Docx, &not_word).to_string(),
        "not a valid DOCX: missing word/document.xml; the file may be damaged or incomplete: save or download it again and upload it again"
    );

    let broken_xml = fixtures::zip(&[("word/document.xml", "<w:document><w:body><w:p>")]);
    assert!(matches!(
        error(Format::Docx, &broken_xml),
        ExtractError::Corrupt(_) | ExtractError::Empty
    ));

    let pptx = fixtures::pptx(&[fixtures::SlideSpec {
        title: "T",
        bullets: &["b"],
        notes: None,
    }]);
    assert!(matches!(
        error(Format::Pptx, &pptx[..pptx.len() - 30]),
        ExtractError::Corrupt(_)
    ));

    let xlsx = fixtures::xlsx(&[("S", vec![vec!["a".to_string()]])]);
    let truncated = error(Format::Spreadsheet, &xlsx[..xlsx.len() / 2]);
    assert!(
        matches!(truncated, ExtractError::Corrupt(_)),
        "{truncated:?}"
    );
    let random = error(Format::Spreadsheet, &fixtures::noise(50_000, 4));
    assert!(
        random.to_string().starts_with("not a valid spreadsheet"),
        "{random}"
    );
    let random_ole = [
        b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".as_slice(),
        &fixtures::noise(50_000, 5),
    ]
    .concat();
    assert!(matches!(
        error(Format::Spreadsheet, &random_ole),
        ExtractError::Corrupt(_)
    ));
}

#[test]
fn zip_bombs_stop_at_the_limit() {
    // 600 MB of zeros packed to well under a megabyte, sizes declared honestly: refused from the
    // central directory before anything inflates.
    let honest = fixtures::zip_bomb("word/document.xml", 600 * 1024 * 1024, false);
    assert!(
        honest.len() < 2 * 1024 * 1024,
        "bomb is {} bytes",
        honest.len()
    );
    let error = error(Format::Docx, &honest);
    assert_eq!(
        error.to_string(),
        "the DOCX unpacks to more than 512 MiB, the limit for one document (it may be a zip bomb); split the document into smaller files and upload them separately"
    );

    // The same with the sizes in the headers rewritten to 1,000 bytes: caught while inflating.
    let liar = fixtures::zip_bomb("word/document.xml", 600 * 1024 * 1024, true);
    assert!(matches!(
        super::hostile::error(Format::Docx, &liar),
        ExtractError::TooLarge(_) | ExtractError::Corrupt(_)
    ));
    let small = Limits {
        max_unpacked_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let liar_small = fixtures::zip_bomb("word/document.xml", 64 * 1024 * 1024, true);
    let error = timed(Format::Docx, &liar_small, &small).unwrap_err();
    assert!(
        matches!(error, ExtractError::TooLarge(_) | ExtractError::Corrupt(_)),
        "{error:?}"
    );

    // A spreadsheet bomb is caught before calamine inflates anything.
    let sheet_bomb = fixtures::zip_bomb("xl/worksheets/sheet1.xml", 64 * 1024 * 1024, true);
    let error = timed(Format::Spreadsheet, &sheet_bomb, &small).unwrap_err();
    assert!(
        matches!(error, ExtractError::TooLarge(_) | ExtractError::Corrupt(_)),
        "{error:?}"
    );
}

#[test]
fn empty_files() {
    let formats = [
        Format::Pdf,
        Format::Docx,
        Format::Pptx,
        Format::Spreadsheet,
        Format::Csv,
        Format::Html,
        Format::Markdown,
        Format::Text,
        Format::Json,
        Format::Yaml,
        Format::Code {
            language: "rust".into(),
        },
    ];
    for format in formats {
        for bytes in [b"".as_slice(), b"  \n\n\t "] {
            let error = error(format.clone(), bytes);
            assert!(
                matches!(error, ExtractError::Empty),
                "{format:?}: {error:?}"
            );
            assert_eq!(
                error.to_string(),
                "the file is empty or contains no text to index"
            );
        }
    }
    // Structure without text is empty too.
    assert!(matches!(
        error(
            Format::Html,
            b"<html><body><script>x()</script></body></html>"
        ),
        ExtractError::Empty
    ));
    assert!(matches!(
        error(Format::Docx, &fixtures::docx("<w:p/>")),
        ExtractError::Empty
    ));
}

#[test]
fn html_with_50_mb_of_scripts() {
    let mut html = String::from("<!DOCTYPE html><html><head><title>Heavy</title>");
    let script = format!(
        "<script>{}</script>\n",
        "var x = '<div>not text</div>'; ".repeat(10_000)
    );
    while html.len() < 50 * 1024 * 1024 {
        html.push_str(&script);
    }
    html.push_str("</head><body><main><h1>Real</h1><p>The actual article.</p></main>");
    html.push_str("<script>unterminated");
    let extracted = timed(Format::Html, html.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(extracted.title.as_deref(), Some("Heavy"));
    let texts: Vec<&str> = extracted.sections.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["The actual article."]);
}

#[test]
fn deeply_nested_html_does_not_overflow() {
    let html = format!(
        "{}deep text{}",
        "<div>".repeat(100_000),
        "</div>".repeat(100_000)
    );
    let extracted = timed(Format::Html, html.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(crate::all_text(&extracted), "deep text");
}

#[test]
fn invalid_json_names_the_place() {
    let error = error(Format::Json, b"{\"a\": [1, 2,, 3]}");
    assert!(
        error
            .to_string()
            .starts_with("not valid JSON: expected value at line 1 column 13"),
        "{error}"
    );
}

#[test]
fn pdf_stream_bomb_stops_at_the_limit() {
    let bomb = fixtures::pdf_stream_bomb(64 * 1024 * 1024);
    assert!(bomb.len() < 1024 * 1024, "bomb is {} bytes", bomb.len());
    let small = Limits {
        max_unpacked_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let error = timed(Format::Pdf, &bomb, &small).unwrap_err();
    assert!(matches!(error, ExtractError::TooLarge(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("the PDF's content unpacks to more than 8 MiB"),
        "{error}"
    );
}

#[test]
fn diagonal_xlsx_is_too_large_not_out_of_memory() {
    // 5,000 cells on a diagonal: tiny to store, 25 million cells as a table.
    let mut data = String::new();
    for i in 0..5_000u32 {
        let mut column = String::new();
        let mut n = i + 1;
        while n > 0 {
            column.insert(0, (b'A' + ((n - 1) % 26) as u8) as char);
            n = (n - 1) / 26;
        }
        data.push_str(&format!(
            r#"<row r="{}">{}</row>"#,
            i + 1,
            fixtures::cell_xml(&format!("{column}{}", i + 1), "x")
        ));
    }
    let error = error(
        Format::Spreadsheet,
        &fixtures::xlsx_raw(&[("Diagonal", data)]),
    );
    assert_eq!(
        error.to_string(),
        "the sheet \"Diagonal\" spans 5000 rows × 5000 columns, more cells than the 10000000 allowed; split the document into smaller files and upload them separately"
    );
}

#[test]
fn input_over_the_limit() {
    let limits = Limits {
        max_unpacked_bytes: 1024,
        ..Limits::default()
    };
    let error = timed(Format::Text, &vec![b'a'; 2048], &limits).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("the file is larger than 1 KiB, the limit for one document"),
        "{error}"
    );
}
