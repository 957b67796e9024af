//! Every format extracted from a small real file: the text a user would see, heading paths,
//! PDF pages, slide numbers, sheet labels, titles, and mixed scripts passing through.

use tale_extract::{Format, Limits, extract};

use crate::fixtures::{self, SlideSpec, list_item, p, table};
use crate::{all_text, ok, section_with};

const MIXED: &str = "日本語のテキスト、中文 and 한국어 · مرحبا بالعالم · emoji 👩‍💻🚀 · café";

#[test]
fn docx_headings_lists_tables_code_and_title() {
    let body = [
        p(Some("Title"), "Annual Plan"),
        p(None, "Intro paragraph."),
        p(Some("berschrift1"), "Error handling"),
        p(Some("Heading2"), "Recoverable errors"),
        p(None, "Use Result &amp; the ? operator."),
        list_item(0, "first point"),
        list_item(1, "nested point"),
        list_item(0, "second point"),
        table(&[&["Name", "Score"], &["Ada", "10"], &["Grace | Hopper", "9"]]),
        p(Some("SourceCode"), "fn main() {"),
        p(Some("SourceCode"), "    println!(\"hi\");"),
        p(Some("SourceCode"), "}"),
        p(Some("berschrift1"), "Scripts"),
        p(None, MIXED),
    ]
    .concat();
    let extracted = ok(Format::Docx, &fixtures::docx(&body));
    assert_eq!(extracted.title.as_deref(), Some("Quarterly Report"));
    let intro = section_with(&extracted, "Intro paragraph.");
    assert_eq!(intro.heading_path, ["Annual Plan"]);
    let errors = section_with(&extracted, "Result & the ? operator");
    assert_eq!(
        errors.heading_path,
        ["Annual Plan", "Error handling", "Recoverable errors"]
    );
    assert!(errors.page.is_none());
    assert!(
        errors
            .text
            .contains("- first point\n  - nested point\n- second point"),
        "{}",
        errors.text
    );
    assert!(
        errors
            .text
            .contains("| Name | Score |\n| --- | --- |\n| Ada | 10 |\n| Grace \\| Hopper | 9 |"),
        "{}",
        errors.text
    );
    assert!(
        errors
            .text
            .contains("```\nfn main() {\n    println!(\"hi\");\n}\n```"),
        "{}",
        errors.text
    );
    let scripts = section_with(&extracted, "日本語");
    assert_eq!(scripts.heading_path, ["Annual Plan", "Scripts"]);
    assert_eq!(scripts.text, MIXED);
}

#[test]
fn pptx_slides_in_presentation_order_with_notes() {
    let bytes = fixtures::pptx(&[
        SlideSpec {
            title: "Kick-off",
            bullets: &["Goals", "Timeline"],
            notes: Some("Say hello first."),
        },
        SlideSpec {
            title: "Budget",
            bullets: &["€ 1.2 M", MIXED],
            notes: None,
        },
        SlideSpec {
            title: "Questions?",
            bullets: &[],
            notes: None,
        },
    ]);
    let extracted = ok(Format::Pptx, &bytes);
    assert_eq!(extracted.title.as_deref(), Some("Kick-off"));
    type Slide<'a> = (Option<u32>, Option<&'a str>, &'a [String], &'a str);
    let slides: Vec<Slide<'_>> = extracted
        .sections
        .iter()
        .map(|s| {
            (
                s.page,
                s.label.as_deref(),
                s.heading_path.as_slice(),
                s.text.as_str(),
            )
        })
        .collect();
    assert_eq!(slides.len(), 3, "{slides:#?}");
    assert_eq!(slides[0].0, Some(1));
    assert_eq!(slides[0].1, Some("Slide 1"));
    assert_eq!(slides[0].2, ["Kick-off"]);
    assert_eq!(
        slides[0].3,
        "- Goals\n- Timeline\n\nNotes: Say hello first."
    );
    assert_eq!(slides[1].2, ["Budget"]);
    assert_eq!(slides[1].3, format!("- € 1.2 M\n- {MIXED}"));
    // A title-only slide keeps its title as text; the slide-number placeholder is dropped.
    assert_eq!((slides[2].0, slides[2].3), (Some(3), "Questions?"));
}

#[test]
fn xlsx_sheets_as_tables_with_header_repeated() {
    let mut big = vec![vec!["Id".to_string(), "Name".to_string()]];
    for i in 1..=250 {
        big.push(vec![i.to_string(), format!("item {i}")]);
    }
    let bytes = fixtures::xlsx(&[
        (
            "Q3",
            vec![
                vec!["Region".into(), "Revenue".into()],
                vec!["North".into(), "1200.5".into()],
                vec!["Süd".into(), "300".into()],
            ],
        ),
        ("Inventory", big),
    ]);
    let extracted = ok(Format::Spreadsheet, &bytes);
    let q3 = &extracted.sections[0];
    assert_eq!(q3.label.as_deref(), Some("Sheet: Q3"));
    assert_eq!(
        q3.text,
        "| Region | Revenue |\n| --- | --- |\n| North | 1200.5 |\n| Süd | 300 |"
    );
    let parts: Vec<&str> = extracted.sections[1..]
        .iter()
        .filter_map(|s| s.label.as_deref())
        .collect();
    assert_eq!(
        parts,
        [
            "Sheet: Inventory, rows 2–101",
            "Sheet: Inventory, rows 102–201",
            "Sheet: Inventory, rows 202–251"
        ]
    );
    for section in &extracted.sections[1..] {
        assert!(
            section.text.starts_with("| Id | Name |\n| --- | --- |\n"),
            "{}",
            section.text
        );
    }
    assert!(extracted.sections[3].text.ends_with("| 250 | item 250 |"));
}

#[test]
fn csv_with_semicolons_and_windows_1252() {
    // "Müller;Köln" in Windows-1252, as Excel in Germany saves CSV.
    let bytes = b"Name;Stadt;Notiz\r\nM\xfcller;K\xf6ln;\"sagt \"\"hallo\"\"; tsch\xfcss\"\r\nLi;\xc4rhus;\r\n";
    let extracted = ok(Format::Csv, bytes);
    assert_eq!(extracted.sections.len(), 1);
    assert_eq!(
        extracted.sections[0].text,
        "| Name | Stadt | Notiz |\n| --- | --- | --- |\n| Müller | Köln | sagt \"hallo\"; tschüss |\n| Li | Ärhus |  |"
    );
}

#[test]
fn pdf_pages_are_numbered_and_paragraphs_kept() {
    let pages = vec![
        vec![
            "Chapter one begins here.".to_string(),
            "It has two lines.".to_string(),
            String::new(),
            "New paragraph.".to_string(),
        ],
        vec!["Second page text, café.".to_string()],
        vec!["Third page.".to_string()],
    ];
    let mut doc = fixtures::pdf(&pages);
    let extracted = ok(Format::Pdf, &fixtures::save(&mut doc));
    assert_eq!(extracted.title.as_deref(), Some("Generated Handbook"));
    let texts: Vec<(Option<u32>, &str)> = extracted
        .sections
        .iter()
        .map(|s| (s.page, s.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            (
                Some(1),
                "Chapter one begins here.\nIt has two lines.\n\nNew paragraph."
            ),
            (Some(2), "Second page text, café."),
            (Some(3), "Third page."),
        ]
    );
}

#[test]
fn pdf_with_empty_user_password_is_read() {
    // Owner-password-only PDFs (copy/print restrictions) open in every viewer without asking.
    let doc = fixtures::pdf(&[vec!["Restricted but readable.".to_string()]]);
    let extracted = ok(Format::Pdf, &fixtures::encrypt(doc, ""));
    assert_eq!(all_text(&extracted), "Restricted but readable.");
}

#[test]
fn html_headings_code_tables_and_no_chrome() {
    let html = format!(
        r##"<!DOCTYPE html><html><head><title>Guide &amp; Notes</title><style>body{{color:red}}</style></head><body>
        <header><nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav></header>
        <aside class="sidebar">Sidebar links</aside>
        <main>
          <h1>Getting <em>started</em><a class="anchor" href="#x">§</a></h1>
          <p>Install   the
             tool with <code>cargo install</code>.</p>
          <h2>Configure</h2>
          <ul><li>one</li><li>two<ul><li>two-a</li></ul></li></ul>
          <ol start="3"><li>third</li><li>fourth</li></ol>
          <pre><code class="language-toml">[server]
port = 8080</code></pre>
          <table><thead><tr><th>Key</th><th>Meaning</th></tr></thead><tbody><tr><td>port</td><td>TCP port</td></tr></tbody></table>
          <p hidden>secret</p><div style="display: none">gone</div>
          <p>{MIXED}</p>
          <script>var tracking = "do not index";</script>
        </main>
        <footer>© 2024 Example</footer></body></html>"##
    );
    let extracted = ok(Format::Html, html.as_bytes());
    assert_eq!(extracted.title.as_deref(), Some("Guide & Notes"));
    let text = all_text(&extracted);
    for chrome in [
        "Home",
        "Sidebar",
        "©",
        "tracking",
        "secret",
        "gone",
        "§",
        "color:red",
    ] {
        assert!(!text.contains(chrome), "{chrome:?} leaked into {text}");
    }
    let intro = section_with(&extracted, "Install the tool");
    assert_eq!(intro.heading_path, ["Getting started"]);
    assert_eq!(intro.text, "Install the tool with `cargo install`.");
    let configure = section_with(&extracted, "one");
    assert_eq!(configure.heading_path, ["Getting started", "Configure"]);
    assert_eq!(
        configure.text,
        format!(
            "- one\n- two\n  - two-a\n\n3. third\n4. fourth\n\n```toml\n[server]\nport = 8080\n```\n\n| Key | Meaning |\n| --- | --- |\n| port | TCP port |\n\n{MIXED}"
        )
    );
}

#[test]
fn rustdoc_page_main_content_only() {
    let Some(docs) = crate::rust_docs() else {
        eprintln!("rust-docs not installed; skipping");
        return;
    };
    let bytes = std::fs::read(docs.join("std/vec/struct.Vec.html")).unwrap();
    let extracted = ok(Format::Html, &bytes);
    assert_eq!(extracted.title.as_deref(), Some("Vec in std::vec - Rust"));
    let text = all_text(&extracted);
    // The sidebar lists every method and module; its headings and search chrome must not leak.
    for chrome in [
        "Search",
        "Settings",
        "Help",
        "Expand description",
        "In std::vec",
        "Sections",
        "Methods\n",
    ] {
        assert!(!text.contains(chrome), "{chrome:?} leaked");
    }
    // Every section sits under the page's h1.
    assert!(
        extracted
            .sections
            .iter()
            .all(|s| s.heading_path.first().map(String::as_str) == Some("Struct Vec"))
    );
    // A method's docs sit under its signature, inside "Implementations"; its examples under
    // "Examples" below that, as Rust code blocks.
    let examples = extracted
        .sections
        .iter()
        .find(|s| {
            s.heading_path.last().map(String::as_str) == Some("Examples")
                && s.heading_path
                    .iter()
                    .any(|h| h == "pub fn with_capacity(capacity: usize) -> Vec<T>")
        })
        .expect("a section for the examples of Vec::with_capacity");
    assert_eq!(
        examples.heading_path[..3],
        ["Struct Vec", "Implementations", "impl<T> Vec<T>"]
    );
    assert!(
        examples.text.starts_with(
            "```rust
"
        ),
        "{}",
        examples.text
    );
    assert!(
        examples
            .text
            .contains("let mut vec = Vec::with_capacity(10);"),
        "{}",
        examples.text
    );
    assert!(
        !text.contains("Source\n") && !text.contains("· Source"),
        "rustdoc's source links leaked"
    );
}

#[test]
fn markdown_keeps_source_and_cuts_at_headings() {
    let md = format!(
        "---\ntitle: \"Field Guide\"\ntags: [a]\n---\n\nPreface.\n\n# Birds\n\nSome birds.\n\n## Owls\n\n```rust\n# not a heading\nlet x = 1;\n```\n\n> # quoted heading stays\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nSetext\n------\n\n{MIXED}\n"
    );
    let extracted = ok(Format::Markdown, md.as_bytes());
    assert_eq!(extracted.title.as_deref(), Some("Field Guide"));
    let texts: Vec<(Vec<String>, String)> = extracted
        .sections
        .iter()
        .map(|s| (s.heading_path.clone(), s.text.clone()))
        .collect();
    assert_eq!(
        texts,
        vec![
            (vec![], "Preface.".to_string()),
            (vec!["Birds".to_string()], "Some birds.".to_string()),
            (
                vec!["Birds".to_string(), "Owls".to_string()],
                "```rust\n# not a heading\nlet x = 1;\n```\n\n> # quoted heading stays\n\n| a | b |\n|---|---|\n| 1 | 2 |".to_string()
            ),
            (vec!["Birds".to_string(), "Setext".to_string()], MIXED.to_string()),
        ]
    );
}

#[test]
fn text_json_yaml_and_code() {
    let text = ok(
        Format::Text,
        format!("line one\r\n\r\n\r\n\r\nline two\u{0}\u{7}\n{MIXED}\n").as_bytes(),
    );
    assert_eq!(all_text(&text), format!("line one\n\nline two\n{MIXED}"));

    let json = ok(
        Format::Json,
        br#"{"name": "tale", "version": 2, "server": {"port": 8080, "hosts": ["a", "b"]}, "users": [{"id": 1, "name": "Ada"}]}"#,
    );
    let sections: Vec<(Vec<String>, &str)> = json
        .sections
        .iter()
        .map(|s| (s.heading_path.clone(), s.text.as_str()))
        .collect();
    assert_eq!(
        sections,
        [
            (vec![], "name: tale\nversion: 2"),
            (
                vec!["server".to_string()],
                "server.port: 8080\nserver.hosts: [a, b]"
            ),
            (
                vec!["users".to_string()],
                "users[0].id: 1\nusers[0].name: Ada"
            ),
        ]
    );
    let lines = ok(Format::Json, b"{\"a\": 1}\n{\"a\": 2}\n");
    assert_eq!(all_text(&lines), "[0].a: 1\n[1].a: 2");

    let yaml = ok(
        Format::Yaml,
        "# deployment\nserver:\n  port: 8080 # the port\n".as_bytes(),
    );
    assert_eq!(
        all_text(&yaml),
        "```yaml\n# deployment\nserver:\n  port: 8080 # the port\n```"
    );

    let code = ok(
        Format::Code {
            language: "rust".into(),
        },
        b"fn main() {\n    println!(\"```\");\n}\n",
    );
    assert_eq!(
        all_text(&code),
        "````rust\nfn main() {\n    println!(\"```\");\n}\n````"
    );
}

#[test]
fn detect_then_extract_a_pdf_named_txt() {
    let mut doc = fixtures::pdf(&[vec!["Hidden PDF.".to_string()]]);
    let bytes = fixtures::save(&mut doc);
    let format = tale_extract::detect(
        "notes.txt",
        Some("text/plain"),
        &bytes[..bytes.len().min(512)],
    );
    assert_eq!(format, Some(Format::Pdf));
    let extracted = extract(&Format::Pdf, &bytes, &Limits::default()).unwrap();
    assert_eq!(all_text(&extracted), "Hidden PDF.");
}

#[test]
fn pdf_text_inside_form_xobjects() {
    let extracted = ok(Format::Pdf, &fixtures::pdf_with_form(" - and more."));
    assert_eq!(all_text(&extracted), "Inside aform - and more.");
}

#[test]
fn sparse_xlsx_keeps_only_used_columns() {
    // A cell at A1 and one at XFD1048576: the bounding box is 17 billion cells, the content two.
    let data = format!(
        r#"<row r="1">{}</row><row r="1048576">{}</row>"#,
        fixtures::cell_xml("A1", "Top left"),
        fixtures::cell_xml("XFD1048576", "Bottom right")
    );
    let extracted = ok(Format::Spreadsheet, &fixtures::xlsx_raw(&[("Far", data)]));
    assert_eq!(
        all_text(&extracted),
        "| Top left |  |\n| --- | --- |\n|  | Bottom right |"
    );
    assert_eq!(extracted.sections[0].label.as_deref(), Some("Sheet: Far"));
}
