//! The knowledge page: folders and documents with their indexing status and failure reasons,
//! drag-and-drop and multi-file upload with progress (Editors and up), delete and re-index, and a
//! search box that shows the passages found. `knowledge.js` keeps the list current while
//! documents are indexed. A document's own page shows its passages in order, with the one a chat
//! answer cited marked.

use crate::layout::{form_error, page, Shell};
use crate::when;
use maud::{html, Markup};

pub struct DocumentRow<'a> {
    pub id: &'a str,
    pub folder: &'a str,
    pub name: &'a str,
    pub title: Option<&'a str>,
    pub status: &'a str,
    pub error: Option<&'a str>,
    pub chunks: i64,
    pub size: i64,
    pub updated_at: i64,
}

pub fn knowledge(shell: &Shell, rows: &[DocumentRow], can_write: bool) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    page(shell, html! {
        h1 { "Knowledge" }
        form #knowledge-search.inline role="search" data-org=(org) {
            div.field { label for="k-query" { "Search the knowledge base" } input #k-query type="search" name="q" required maxlength="10000"; }
            button type="submit" { "Search" }
            (form_error())
        }
        p #k-mode.muted role="status" {}
        ol #k-results aria-live="polite" {}
        @if can_write {
            section aria-labelledby="upload-heading" {
                h2 #upload-heading { "Add documents" }
                div #k-drop.dropzone data-upload=(format!("/api/orgs/{org}/knowledge/documents")) {
                    p { "Drop files here, or " label.button.secondary for="k-files" { "choose files" } }
                    input #k-files.visually-hidden type="file" multiple;
                    div.field { label for="k-folder" { "Into folder" } input #k-folder value="/" maxlength="500" list="k-folder-list"; }
                    datalist #k-folder-list {}
                    p.muted { "PDF, DOCX, PPTX, XLSX, CSV, HTML, Markdown, text, JSON, YAML and source code." }
                }
                ul #k-uploads aria-live="polite" {}
            }
        }
        section aria-labelledby="docs-heading" {
            h2 #docs-heading { "Documents" }
            div.field.inline { label for="k-folder-filter" { "Folder" } select #k-folder-filter { option value="" { "All folders" } } }
            p #k-counts.muted role="status" {}
            table #k-documents data-org=(org) data-can-write[can_write] {
                thead { tr { th scope="col" { "Document" } th scope="col" { "Folder" } th scope="col" { "Status" } th scope="col" { "Passages" } th scope="col" { "Updated" } th scope="col" { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for d in rows {
                        tr data-id=(d.id) data-status=(d.status) {
                            td { (d.title.unwrap_or(d.name)) @if d.title.is_some_and(|t| t != d.name) { br; span.muted { (d.name) } } }
                            td { code { (d.folder) } }
                            td { span.status { (d.status) } @if let Some(e) = d.error { div.msg-error { (e) } } }
                            td { (d.chunks) }
                            td { (when(d.updated_at)) }
                            td.actions {
                                @if can_write {
                                    button.link type="button" data-action=(format!("POST /api/orgs/{org}/knowledge/documents/{}/retry", d.id)) { "Re-index" }
                                    button.link.danger type="button" data-action=(format!("DELETE /api/orgs/{org}/knowledge/documents/{}", d.id)) data-confirm=(format!("Delete {}? Its passages leave every search at once.", d.name)) { "Delete" }
                                }
                            }
                        }
                    }
                    @if rows.is_empty() { tr { td colspan="6" { span.muted { "No documents yet." } } } }
                }
            }
            p.muted { (d_size_note(rows)) }
        }
        script src="/static/knowledge.js" defer {}
    })
}

fn d_size_note(rows: &[DocumentRow]) -> String {
    let bytes: i64 = rows.iter().map(|d| d.size).sum();
    format!("{} documents, {:.1} MB", rows.len(), bytes as f64 / 1_048_576.0)
}

/// One chunk of a document on its page.
pub struct ChunkRow<'a> {
    pub id: &'a str,
    pub position: i64,
    pub page: Option<i64>,
    pub section: &'a str,
    pub text: &'a str,
}

/// A document's passages in order, one of them marked: where a citation in a chat leads.
pub struct DocumentPage<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub title: Option<&'a str>,
    pub folder: &'a str,
    pub status: &'a str,
    pub chunk_count: i64,
    pub chunks: &'a [ChunkRow<'a>],
    /// The cited chunk's id, when the page was opened from a citation.
    pub marked: Option<&'a str>,
    /// A citation whose chunk this document no longer has (re-indexed since).
    pub missing: bool,
    /// The first chunk shown, from 0, and how many a page shows.
    pub from: i64,
    pub page_size: i64,
}

pub fn document(shell: &Shell, d: &DocumentPage) -> Markup {
    let org = shell.org.map(|(o, _)| o.slug.as_str()).unwrap_or("");
    let base = format!("/dashboard/{org}/knowledge/documents/{}", d.id);
    let link = |from: i64| match d.marked {
        Some(c) => format!("{base}?chunk={}&from={from}", url_component(c)),
        None => format!("{base}?from={from}"),
    };
    let last = d.chunks.last().map_or(d.from, |c| c.position + 1);
    page(shell, html! {
        p { a href=(format!("/dashboard/{org}/knowledge")) { "Knowledge" } " › " code { (d.folder) } }
        h1 { (d.title.unwrap_or(d.name)) }
        p.muted { (d.name) " · " span.status { (d.status) } " · " (d.chunk_count) " passages" }
        @if d.missing {
            p.notice role="status" { "The cited passage is no longer in this document: it has been indexed again since. Its beginning is shown instead." }
        }
        @if d.chunks.is_empty() {
            p.muted { "No passages to show." }
        } @else {
            p.muted { "Passages " (d.from + 1) "–" (last) " of " (d.chunk_count) }
            ol.chunks {
                @for c in d.chunks {
                    @let marked = d.marked == Some(c.id);
                    li.passage[marked] id=[marked.then_some("passage")] aria-current=[marked.then_some("true")] data-chunk=(c.id) {
                        div.muted {
                            "Passage " (c.position + 1)
                            @if !c.section.is_empty() { " · " (c.section) }
                            @if let Some(p) = c.page { " · page " (p) }
                            @if marked { " · " strong { "cited" } }
                        }
                        p.text { (c.text) }
                    }
                }
            }
            nav.pager aria-label="Passages" {
                @if d.from > 0 { a href=(link((d.from - d.page_size).max(0))) { "‹ Earlier passages" } " " }
                @if last < d.chunk_count { a href=(link(last)) { "Later passages ›" } }
            }
        }
    })
}

fn url_component(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}
