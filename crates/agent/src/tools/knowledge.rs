//! The knowledge tools (`rag_search`, `document_find`, `document_retrieve`), the passages added
//! to a turn in `context` mode, and the citation register that numbers every passage the model
//! sees so the answer can cite it as `[n]`.
//!
//! The tools reach the knowledge base through [`KnowledgeHost`], which the chat role implements
//! over the knowledge store for one organisation; this crate never opens the store itself.
//!
//! Scope (TALE-COMPAT §3.1): Tale has no teams yet, so every document belongs to the whole
//! organisation. `includeOrgKnowledge: false` (the reference's default) therefore leaves the
//! agent nothing to read; `includeTeamKnowledge` has nothing to add until teams exist.

use super::{PartSink, Tool, ToolOutput};
use crate::config::{Agent, KnowledgeMode};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

pub const NAMES: &[&str] = &["rag_search", "document_find", "document_retrieve"];

/// The reference's top-k for the search tool when the agent sets no `knowledgeTopK`.
pub const DEFAULT_TOP_K: usize = 10;
/// Passages added to each turn in `context` mode without `knowledgeTopK` (the reference's
/// `RAG_TOP_K`): fewer than the tool's, as they cost tokens on every turn whether useful or not.
pub const DEFAULT_CONTEXT_TOP_K: usize = 5;
/// Chunks per `document_retrieve` call, as the reference pages them.
pub const RETRIEVE_PAGE: usize = 10;
const DEFAULT_FIND_LIMIT: usize = 20;
const MAX_FIND_LIMIT: usize = 100;
/// How many documents `document_find` filters over; larger knowledge bases need a folder.
pub const MAX_LISTED_DOCUMENTS: u32 = 10_000;
/// The query is what the user typed; pasted documents make poor queries and are cut.
const MAX_QUERY_CHARS: usize = 2_000;

/// One chunk of a document, as the model reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgePassage {
    pub document_id: String,
    /// The file name.
    pub document: String,
    pub title: Option<String>,
    pub folder: String,
    /// `Heading › Subheading`, possibly empty.
    pub section: String,
    pub page: Option<i64>,
    pub chunk_id: String,
    /// Order in the document, from 0.
    pub position: i64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeDocument {
    pub id: String,
    pub name: String,
    pub title: Option<String>,
    pub folder: String,
    pub media_type: String,
    pub size: i64,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub chunk_count: i64,
    /// Upload time, ms since the epoch.
    pub created_at: i64,
}

/// The knowledge base of the organisation a run belongs to. `Err` means the store could not
/// answer (not open, an index error): the tools then report nothing found and warn in the log.
#[async_trait]
pub trait KnowledgeHost: Send + Sync {
    /// The best `k` passages, optionally only under `folder`.
    async fn search(&self, query: &str, folder: Option<&str>, k: usize) -> Result<Vec<KnowledgePassage>, String>;
    /// Documents under `folder` (and below), at most [`MAX_LISTED_DOCUMENTS`].
    async fn documents(&self, folder: &str) -> Result<Vec<KnowledgeDocument>, String>;
    /// `None` for ids that are not this organisation's.
    async fn document(&self, id: &str) -> Result<Option<KnowledgeDocument>, String>;
    /// Up to `limit` chunks of a document from position `from`.
    async fn chunks(&self, document: &KnowledgeDocument, from: i64, limit: usize) -> Result<Vec<KnowledgePassage>, String>;
    /// Where a person sees the passage in its document (the citation's link).
    fn link(&self, document_id: &str, chunk_id: &str) -> String;
}

/// What an agent's knowledge settings allow.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeSettings {
    pub mode: KnowledgeMode,
    pub top_k: usize,
    pub context_top_k: usize,
    /// Why the agent may read no document, when it may not.
    pub refusal: Option<&'static str>,
}

impl KnowledgeSettings {
    pub fn of(agent: &Agent) -> Self {
        let k = agent.knowledge_top_k.map(|k| k as usize);
        let refusal = (!agent.include_org_knowledge).then_some(
            "this agent does not read organisation-wide documents (its includeOrgKnowledge is false), and Tale has no team documents yet",
        );
        KnowledgeSettings { mode: agent.knowledge_mode, top_k: k.unwrap_or(DEFAULT_TOP_K), context_top_k: k.unwrap_or(DEFAULT_CONTEXT_TOP_K), refusal }
    }
}

/// The tools the run should consider: the agent's `toolNames`, plus `rag_search` when the
/// knowledge mode asks for it, as the editor's Off/Tool/Context/Both selector is the switch.
pub fn requested_tools(agent: &Agent) -> Vec<String> {
    let mut names = agent.tool_names.clone();
    if agent.knowledge_mode.tools() && !names.iter().any(|n| n == "rag_search") {
        names.push("rag_search".into());
    }
    names
}

/// Why a knowledge tool the agent lists is not offered under its knowledge mode. Only
/// `rag_search` follows the mode; `document_find`/`document_retrieve` follow `toolNames` (the
/// reference's translator lists them with the mode off, to read documents the user names).
pub fn mode_reason(agent: &Agent, name: &str) -> Option<&'static str> {
    if name != "rag_search" || agent.knowledge_mode.tools() {
        return None;
    }
    Some(match agent.knowledge_mode {
        KnowledgeMode::Context => "is not offered: this agent's knowledgeMode is 'context', so knowledge base passages are added to the question instead",
        _ => "is not offered: this agent's knowledgeMode is 'off', so it does not use the knowledge base",
    })
}

/// The working knowledge tools, bound to one run.
pub fn knowledge_tools(host: Arc<dyn KnowledgeHost>, citations: Arc<Citations>, settings: &KnowledgeSettings) -> Vec<Arc<dyn Tool>> {
    let shared = Arc::new(Shared { host, citations, refusal: settings.refusal });
    vec![
        Arc::new(RagSearch { k: shared.clone(), top_k: settings.top_k }),
        Arc::new(DocumentFind(shared.clone())),
        Arc::new(DocumentRetrieve(shared)),
    ]
}

/// Numbers the passages a run shows the model, one number per chunk, and records each on the
/// answer as a `citation` part the first time it is shown.
#[derive(Debug, Default)]
pub struct Citations {
    chunks: Mutex<Vec<String>>,
}

impl Citations {
    /// Continues the numbering of an answer that already cites passages (a run resumed after a
    /// form).
    pub fn from_parts(parts: &[Value]) -> Self {
        let mut cited: Vec<(u64, String)> = parts
            .iter()
            .filter(|p| p["type"] == "citation")
            .filter_map(|p| Some((p["n"].as_u64()?, p["chunkId"].as_str()?.to_owned())))
            .collect();
        cited.sort();
        Citations { chunks: Mutex::new(cited.into_iter().map(|(_, c)| c).collect()) }
    }

    pub fn cite(&self, p: &KnowledgePassage, link: &str, sink: &dyn PartSink) -> usize {
        let n = {
            let mut chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = chunks.iter().position(|c| *c == p.chunk_id) {
                return i + 1;
            }
            chunks.push(p.chunk_id.clone());
            chunks.len()
        };
        sink.part(json!({
            "type": "citation", "id": format!("citation-{n}"), "n": n,
            "documentId": p.document_id, "document": p.document, "title": p.title, "folder": p.folder,
            "section": p.section, "page": p.page, "chunkId": p.chunk_id, "position": p.position,
            "text": p.text, "href": link,
        }));
        n
    }
}

/// How to cite, in the words every knowledge result starts with.
const CITE_HOW: &str = "Cite a passage by its marker, e.g. [1], right after the statement it supports; cite only passages you used.";

fn heading(n: usize, p: &KnowledgePassage) -> String {
    let title = p.title.as_deref().filter(|t| !t.trim().is_empty()).unwrap_or(&p.document);
    let mut s = format!("[{n}] {title}");
    // The section path usually starts with the title (a document's first heading).
    let section = p.section.strip_prefix(title).and_then(|r| r.strip_prefix(" › ")).unwrap_or(&p.section);
    if !section.is_empty() && section != title {
        s.push_str(&format!(" › {section}"));
    }
    if let Some(page) = p.page {
        s.push_str(&format!(", page {page}"));
    }
    s.push_str(&format!(" (file {}, folder {}, document_id {}, chunk {})", p.document, p.folder, p.document_id, p.position + 1));
    s
}

/// Numbers the passages and writes them out for the model.
fn numbered(passages: &[KnowledgePassage], host: &dyn KnowledgeHost, citations: &Citations, sink: &dyn PartSink) -> String {
    let mut out = String::new();
    for p in passages {
        let n = citations.cite(p, &host.link(&p.document_id, &p.chunk_id), sink);
        out.push_str(&format!("\n\n{}\n{}", heading(n, p), p.text.trim()));
    }
    out
}

/// The passages added to the question in `context` mode.
pub fn context_block(passages: &[KnowledgePassage], host: &dyn KnowledgeHost, citations: &Citations, sink: &dyn PartSink) -> String {
    format!(
        "<knowledge_base>\nPassages from the organisation's knowledge base found for this message. Use them if they answer it; say so if they do not. {CITE_HOW}{}\n</knowledge_base>",
        numbered(passages, host, citations, sink)
    )
}

/// The user's words as a search query: attachments inlined after them are left out.
pub fn query_of(question: &str) -> String {
    let text = question.split("\n\n<attachment ").next().unwrap_or(question);
    text.chars().take(MAX_QUERY_CHARS).collect()
}

struct Shared {
    host: Arc<dyn KnowledgeHost>,
    citations: Arc<Citations>,
    refusal: Option<&'static str>,
}

impl Shared {
    /// Nothing to read: the model is told why and the run log keeps the reason.
    fn refused(&self) -> Option<ToolOutput> {
        self.refusal.map(|r| ToolOutput { content: format!("Nothing found: {r}."), pause: false, warning: Some(format!("no knowledge: {r}")) })
    }
}

fn unavailable(e: &str) -> ToolOutput {
    ToolOutput {
        content: "Nothing found: the knowledge base cannot be searched right now. Answer without it and tell the user the knowledge base was unavailable.".into(),
        pause: false,
        warning: Some(format!("the knowledge base is unavailable: {e}")),
    }
}

fn opt_str<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

struct RagSearch {
    k: Arc<Shared>,
    top_k: usize,
}

#[async_trait]
impl Tool for RagSearch {
    fn name(&self) -> &'static str {
        "rag_search"
    }
    fn description(&self) -> &'static str {
        "Search the organisation's knowledge base (uploaded documents) for passages relevant to a query. Returns numbered passages with their document, section and page. Cite a passage by its marker, e.g. [1], right after the statement it supports. To read more of a document, use document_retrieve with its document_id."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["query"], "properties": {
            "query": {"type": "string", "description": "What to look for, in the words the documents likely use"},
            "folder": {"type": "string", "description": "Only documents in this folder and below, e.g. /policies"}}})
    }
    async fn call(&self, _call_id: &str, args: Value, parts: &dyn PartSink) -> Result<ToolOutput, String> {
        if let Some(op) = opt_str(&args, "operation").filter(|o| *o != "search") {
            return Err(format!("rag_search only searches ('{op}' is not an operation here): list documents with document_find, read one with document_retrieve"));
        }
        let query: String = opt_str(&args, "query").ok_or("'query' is required and must be a non-empty string")?.chars().take(MAX_QUERY_CHARS).collect();
        if let Some(refused) = self.k.refused() {
            return Ok(refused);
        }
        let passages = match self.k.host.search(&query, opt_str(&args, "folder"), self.top_k).await {
            Ok(p) => p,
            Err(e) => return Ok(unavailable(&e)),
        };
        if passages.is_empty() {
            return Ok(ToolOutput::text(format!("No passage matches \"{query}\". Try other words, or document_find to see which documents exist.")));
        }
        let body = numbered(&passages, self.k.host.as_ref(), &self.k.citations, parts);
        Ok(ToolOutput::text(format!("{} passages for \"{query}\". {CITE_HOW}{body}", passages.len())))
    }
}

struct DocumentFind(Arc<Shared>);

/// Lower-case words of a name: separators and the extension's dot become spaces.
fn words(s: &str) -> Vec<String> {
    s.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

fn bigrams(s: &str) -> Vec<(char, char)> {
    let chars: Vec<char> = s.chars().collect();
    chars.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Sørensen–Dice over character bigrams: tolerant of a typo or a missing letter.
fn dice(a: &str, b: &str) -> f32 {
    let (x, mut y) = (bigrams(a), bigrams(b));
    if x.is_empty() || y.is_empty() {
        return if a == b { 1.0 } else { 0.0 };
    }
    let total = (x.len() + y.len()) as f32;
    let mut common = 0;
    for g in &x {
        if let Some(i) = y.iter().position(|h| h == g) {
            y.swap_remove(i);
            common += 1;
        }
    }
    2.0 * common as f32 / total
}

/// How well a file name (or title) matches a fuzzy query, from 0 to 1: each query word scores
/// 1 when a word of the name contains it, else its closest bigram similarity; words average.
pub fn name_score(query: &str, name: &str) -> f32 {
    let q = words(query);
    let n = words(name);
    if q.is_empty() || n.is_empty() {
        return 0.0;
    }
    if n.join(" ").contains(&q.join(" ")) {
        return 1.0;
    }
    let sum: f32 = q.iter().map(|w| if n.iter().any(|x| x.contains(w.as_str())) { 1.0 } else { n.iter().map(|x| dice(w, x)).fold(0.0, f32::max) }).sum();
    sum / q.len() as f32
}

const NAME_THRESHOLD: f32 = 0.5;

fn extension(name: &str) -> &str {
    name.rsplit_once('.').map_or("", |(_, e)| e)
}

/// Whether a document is of the asked type: an extension (`pdf`, `.md`), a media type, or a
/// common word for one (`word`, `excel`, `markdown`, `powerpoint`, `text`).
pub fn type_matches(wanted: &str, name: &str, media_type: &str) -> bool {
    let w = wanted.trim().trim_start_matches('.').to_lowercase();
    let ext = extension(name).to_lowercase();
    let aliases: &[&str] = match w.as_str() {
        "word" => &["docx", "doc"],
        "excel" | "spreadsheet" => &["xlsx", "xls", "csv"],
        "powerpoint" | "slides" => &["pptx", "ppt"],
        "markdown" => &["md", "markdown"],
        "text" => &["txt", "md"],
        "yaml" => &["yaml", "yml"],
        "html" => &["html", "htm"],
        _ => &[],
    };
    !w.is_empty() && (ext == w || aliases.contains(&ext.as_str()) || media_type.eq_ignore_ascii_case(&w) || (w.contains('/') && media_type.starts_with(&w)))
}

/// Milliseconds at 00:00 UTC of a `YYYY-MM-DD` date (the rest of a longer timestamp ignored).
pub fn date_ms(s: &str) -> Option<i64> {
    let d = s.trim().get(..10)?;
    let mut it = d.split('-');
    let (y, m, day): (i64, i64, i64) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400_000)
}

/// `YYYY-MM-DD` (UTC) of a time in ms since the epoch.
pub fn date_of(ms: i64) -> String {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{m:02}-{d:02}", yoe + era * 400 + i64::from(m <= 2))
}

fn describe(d: &KnowledgeDocument) -> String {
    let mut s = format!("- {}", d.name);
    if let Some(t) = d.title.as_deref().filter(|t| !t.trim().is_empty() && *t != d.name) {
        s.push_str(&format!(" (\"{t}\")"));
    }
    s.push_str(&format!(" — document_id {}, folder {}, {}, {} bytes, uploaded {}, ", d.id, d.folder, d.media_type, d.size, date_of(d.created_at)));
    match d.status.as_str() {
        "completed" => s.push_str(&format!("{} chunks", d.chunk_count)),
        "failed" => s.push_str(&format!("could not be indexed: {}", d.error.as_deref().unwrap_or("unknown reason"))),
        other => s.push_str(&format!("{other}, not readable yet")),
    }
    s
}

#[async_trait]
impl Tool for DocumentFind {
    fn name(&self) -> &'static str {
        "document_find"
    }
    fn description(&self) -> &'static str {
        "List the knowledge base's documents, filtered by fuzzy file name, folder, type (pdf, docx, markdown, ...) or upload date. Returns each document's document_id for document_retrieve."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "name": {"type": "string", "description": "Part of the file name or title; spelling need not be exact"},
            "folder": {"type": "string", "description": "Only this folder and below, e.g. /policies"},
            "type": {"type": "string", "description": "File type: an extension (pdf, docx, xlsx, md, ...) or a media type"},
            "uploaded_after": {"type": "string", "description": "YYYY-MM-DD: uploaded on or after this day (UTC)"},
            "uploaded_before": {"type": "string", "description": "YYYY-MM-DD: uploaded on or before this day (UTC)"},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_FIND_LIMIT, "description": "At most this many (default 20)"}}})
    }
    async fn call(&self, _call_id: &str, args: Value, _parts: &dyn PartSink) -> Result<ToolOutput, String> {
        let date = |key: &str| -> Result<Option<i64>, String> {
            opt_str(&args, key).map(|s| date_ms(s).ok_or(format!("'{key}' must be a date as YYYY-MM-DD"))).transpose()
        };
        let (after, before) = (date("uploaded_after")?, date("uploaded_before")?);
        let limit = args.get("limit").and_then(Value::as_u64).map_or(DEFAULT_FIND_LIMIT, |n| (n as usize).clamp(1, MAX_FIND_LIMIT));
        if let Some(refused) = self.0.refused() {
            return Ok(refused);
        }
        let docs = match self.0.host.documents(opt_str(&args, "folder").unwrap_or("/")).await {
            Ok(d) => d,
            Err(e) => return Ok(unavailable(&e)),
        };
        let name = opt_str(&args, "name");
        let mut found: Vec<(f32, KnowledgeDocument)> = docs
            .into_iter()
            .filter(|d| opt_str(&args, "type").is_none_or(|t| type_matches(t, &d.name, &d.media_type)))
            .filter(|d| after.is_none_or(|a| d.created_at >= a) && before.is_none_or(|b| d.created_at < b + 86_400_000))
            .filter_map(|d| {
                let score = name.map_or(1.0, |q| name_score(q, &d.name).max(d.title.as_deref().map_or(0.0, |t| name_score(q, t))));
                (score >= NAME_THRESHOLD).then_some((score, d))
            })
            .collect();
        // Best name matches first; otherwise the store's order (folder, then name).
        found.sort_by(|a, b| b.0.total_cmp(&a.0));
        if found.is_empty() {
            return Ok(ToolOutput::text("No document matches. Try fewer filters or another spelling."));
        }
        let total = found.len();
        let mut out = format!("{total} documents match{}:", if total > limit { format!("; the first {limit}") } else { String::new() });
        for (_, d) in found.iter().take(limit) {
            out.push('\n');
            out.push_str(&describe(d));
        }
        if total > limit {
            out.push_str("\nNarrow the filters to see the others.");
        }
        Ok(ToolOutput::text(out))
    }
}

struct DocumentRetrieve(Arc<Shared>);

#[async_trait]
impl Tool for DocumentRetrieve {
    fn name(&self) -> &'static str {
        "document_retrieve"
    }
    fn description(&self) -> &'static str {
        "Read a knowledge-base document by its document_id, 10 chunks per call in order; 'from' is the chunk number to start at (1 is the beginning). Chunks are numbered passages you can cite like [1]."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["document_id"], "properties": {
            "document_id": {"type": "string", "description": "From document_find or a search result"},
            "from": {"type": "integer", "minimum": 1, "description": "First chunk to read (default 1)"}}})
    }
    async fn call(&self, _call_id: &str, args: Value, parts: &dyn PartSink) -> Result<ToolOutput, String> {
        let id = opt_str(&args, "document_id").ok_or("'document_id' is required and must be a non-empty string")?;
        let from = match args.get("from") {
            None | Some(Value::Null) => 1,
            Some(v) => v.as_i64().filter(|n| *n >= 1).ok_or("'from' must be a chunk number from 1")?,
        };
        if let Some(refused) = self.0.refused() {
            return Ok(refused);
        }
        let doc = match self.0.host.document(id).await {
            Ok(Some(d)) => d,
            Ok(None) => return Err(format!("there is no document '{id}'; find documents with document_find")),
            Err(e) => return Ok(unavailable(&e)),
        };
        match doc.status.as_str() {
            "completed" => {}
            "failed" => return Err(format!("'{}' could not be indexed: {}", doc.name, doc.error.as_deref().unwrap_or("unknown reason"))),
            other => return Err(format!("'{}' is not readable yet (it is {other}); try again in a moment", doc.name)),
        }
        if from > doc.chunk_count {
            return Err(format!("'{}' has {} chunks; 'from' must be at most {}", doc.name, doc.chunk_count, doc.chunk_count.max(1)));
        }
        let chunks = match self.0.host.chunks(&doc, from - 1, RETRIEVE_PAGE).await {
            Ok(c) => c,
            Err(e) => return Ok(unavailable(&e)),
        };
        let last = chunks.last().map_or(from - 1, |c| c.position + 1);
        let mut out = format!("{}: chunks {from}–{last} of {}. {CITE_HOW}", doc.name, doc.chunk_count);
        out.push_str(&numbered(&chunks, self.0.host.as_ref(), &self.0.citations, parts));
        if last < doc.chunk_count {
            out.push_str(&format!("\n\nMore follows: call document_retrieve with document_id {} and from {}.", doc.id, last + 1));
        } else {
            out.push_str("\n\nThat is the end of the document.");
        }
        Ok(ToolOutput::text(out))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct Parts(Mutex<Vec<Value>>);
    impl PartSink for Parts {
        fn part(&self, part: Value) {
            self.0.lock().unwrap().push(part);
        }
    }

    fn passage(chunk: &str) -> KnowledgePassage {
        KnowledgePassage {
            document_id: "d".into(),
            document: "a.md".into(),
            title: None,
            folder: "/".into(),
            section: String::new(),
            page: None,
            chunk_id: chunk.into(),
            position: 0,
            text: "t".into(),
        }
    }

    #[test]
    fn each_chunk_gets_one_number_and_one_part() {
        let c = Citations::default();
        let sink = Parts(Mutex::new(Vec::new()));
        assert_eq!(c.cite(&passage("x"), "/x", &sink), 1);
        assert_eq!(c.cite(&passage("y"), "/y", &sink), 2);
        assert_eq!(c.cite(&passage("x"), "/x", &sink), 1, "seen again: same number");
        let parts = sink.0.into_inner().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[1]["id"].as_str(), parts[1]["n"].as_u64(), parts[1]["href"].as_str()), (Some("citation-2"), Some(2), Some("/y")));
        let resumed = Citations::from_parts(&parts);
        let sink = Parts(Mutex::new(Vec::new()));
        assert_eq!(resumed.cite(&passage("y"), "/y", &sink), 2);
        assert_eq!(resumed.cite(&passage("z"), "/z", &sink), 3, "a resumed answer continues its numbering");
    }

    #[test]
    fn fuzzy_names_tolerate_typos_and_order() {
        assert_eq!(name_score("lighthouse", "lighthouses.md"), 1.0);
        assert!(name_score("lighthuose", "lighthouses.md") >= NAME_THRESHOLD);
        assert!(name_score("manual keeper", "Keepers-Manual-2020.pdf") >= NAME_THRESHOLD);
        assert!(name_score("buget", "Annual budget report.xlsx") >= NAME_THRESHOLD);
        assert!(name_score("invoice", "lighthouses.md") < NAME_THRESHOLD);
    }

    #[test]
    fn types_match_by_extension_media_type_or_word() {
        assert!(type_matches("pdf", "a.PDF", "application/pdf"));
        assert!(type_matches(".md", "a.md", "text/markdown"));
        assert!(type_matches("markdown", "a.md", "text/markdown"));
        assert!(type_matches("word", "a.docx", "application/octet-stream"));
        assert!(type_matches("text/markdown", "notes", "text/markdown"));
        assert!(type_matches("text/", "notes", "text/plain"));
        assert!(!type_matches("pdf", "a.md", "text/markdown"));
        assert!(!type_matches("", "a.md", "text/markdown"));
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(date_ms("1970-01-01"), Some(0));
        assert_eq!(date_ms("2024-03-01T10:00:00Z"), Some(1_709_251_200_000));
        assert_eq!(date_of(1_709_251_200_000 + 3_600_000), "2024-03-01");
        assert_eq!(date_of(date_ms("2000-02-29").unwrap()), "2000-02-29");
        assert_eq!(date_ms("2024-13-01"), None);
        assert_eq!(date_ms("yesterday"), None);
    }

    #[test]
    fn the_knowledge_tools_need_knowledge_read_which_every_role_that_chats_holds() {
        use tale_core::permission::Permission;
        use tale_core::role::Role;
        for role in [Role::Owner, Role::Admin, Role::Developer, Role::Editor, Role::Member, Role::Disabled] {
            for name in NAMES {
                assert_eq!(super::super::permission_of(name).unwrap().allows(role), Permission::KnowledgeRead.allows(role), "{name} as {role:?}");
            }
            // Were a role to chat without reading knowledge, the run would refuse these tools as
            // `denied` and skip context passages; a chat test for that role would then be due.
            assert!(!Permission::ChatUse.allows(role) || Permission::KnowledgeRead.allows(role), "{role:?}");
        }
    }

    #[test]
    fn queries_leave_attachments_out() {
        assert_eq!(query_of("What does it say?\n\n<attachment name=\"a.txt\">\nlots\n</attachment>"), "What does it say?");
    }
}
