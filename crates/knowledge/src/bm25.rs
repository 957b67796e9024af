//! The BM25 index (tantivy): one entry per chunk, its header and text indexed into the field of
//! its language (see [`crate::tokenize`]), stored with what a search result shows, and filtered
//! by organisation and folder inside the query, so ranking only ever sees what the caller may
//! read.

use crate::tokenize::{self, STEMMED};
use crate::{Error, Result};
use std::path::Path;
use std::sync::Mutex;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// Query terms beyond this are ignored: a 10 KB question must not become a 10,000-clause query.
const MAX_QUERY_TERMS: usize = 64;
/// A language whose field holds this share of the indexed words is always searched.
const MAJOR_LANGUAGE_SHARE: f64 = 0.05;
/// Memory for the writer's in-flight segment.
const WRITER_HEAP: usize = 64 * 1024 * 1024;
/// An idle index with more segments than this is merged (see [`Bm25::merge_segments`]). A
/// query visits every segment (at a million chunks, 14 segments left by a bulk upload cost BM25
/// ~2.3 ms of its p50); tantivy's own merge policy waits for eight segments of a size before
/// merging them, so large ones linger after a bulk upload until the next one.
pub const IDLE_MERGE_ABOVE: usize = 8;

/// A chunk as the index keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedChunk<'a> {
    pub chunk_id: &'a str,
    pub document_id: &'a str,
    pub org_id: &'a str,
    pub folder: &'a str,
    pub header: &'a str,
    pub text: &'a str,
    pub page: Option<u32>,
    pub section: &'a str,
}

/// One ranked chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub chunk_id: String,
    pub document_id: String,
    pub score: f32,
}

/// Which chunks a search may see, beyond the organisation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Only chunks in these folders (or below them); `None` is every folder.
    pub folders: Option<Vec<String>>,
    /// Only these documents; `None` is every document.
    pub documents: Option<Vec<String>>,
}

struct Fields {
    chunk_id: Field,
    document_id: Field,
    org_id: Field,
    folders: Field,
    header: Field,
    text: Field,
    page: Field,
    section: Field,
    /// (suffix, field) for each stemmed language, then `plain`.
    languages: Vec<(&'static str, Field)>,
}

pub struct Bm25 {
    index: Index,
    reader: IndexReader,
    writer: Option<Mutex<IndexWriter>>,
    f: Fields,
}

fn tantivy_err(e: tantivy::TantivyError) -> Error {
    Error::Index(e.to_string())
}

fn analyzer_name(suffix: &str) -> String {
    format!("tale_{suffix}")
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexed = |suffix: &str| {
        TextOptions::default().set_indexing_options(TextFieldIndexing::default().set_tokenizer(&analyzer_name(suffix)).set_index_option(IndexRecordOption::WithFreqs))
    };
    let chunk_id = b.add_text_field("chunk_id", STRING | STORED);
    let document_id = b.add_text_field("document_id", STRING | STORED);
    let org_id = b.add_text_field("org_id", STRING);
    let folders = b.add_text_field("folders", STRING);
    let header = b.add_text_field("header", STORED);
    let text = b.add_text_field("text", STORED);
    let page = b.add_u64_field("page", STORED);
    let section = b.add_text_field("section", STORED);
    let mut languages: Vec<(&'static str, Field)> = STEMMED.iter().map(|(s, _, _)| (*s, b.add_text_field(&format!("text_{s}"), indexed(s)))).collect();
    languages.push(("plain", b.add_text_field("text_plain", indexed("plain"))));
    (b.build(), Fields { chunk_id, document_id, org_id, folders, header, text, page, section, languages })
}

/// `/a/b` is in `/`, `/a` and `/a/b`.
fn folder_prefixes(folder: &str) -> Vec<String> {
    let mut out = vec!["/".to_owned()];
    let mut path = String::new();
    for part in folder.split('/').filter(|p| !p.is_empty()) {
        path.push('/');
        path.push_str(part);
        out.push(path.clone());
    }
    out
}

impl Bm25 {
    /// Opens (creating) the index in `dir`. Only one process may write; others open read-only.
    pub fn open(dir: &Path, writable: bool) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
        let (schema, f) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir).map_err(|e| Error::Index(e.to_string()))?;
        let index = Index::open_or_create(directory, schema).map_err(tantivy_err)?;
        for (suffix, language, _) in STEMMED {
            index.tokenizers().register(&analyzer_name(suffix), tokenize::stemmed_analyzer(*language));
        }
        index.tokenizers().register(&analyzer_name("plain"), tokenize::plain_analyzer());
        let writer = if writable { Some(Mutex::new(index.writer(WRITER_HEAP).map_err(tantivy_err)?)) } else { None };
        let reader = index.reader_builder().reload_policy(ReloadPolicy::OnCommitWithDelay).try_into().map_err(tantivy_err)?;
        Ok(Bm25 { index, reader, writer, f })
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, IndexWriter>> {
        let w = self.writer.as_ref().ok_or_else(|| Error::Index("the index is open read-only".into()))?;
        Ok(w.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces a document's chunks (not visible until [`Bm25::commit`]).
    pub fn put_document(&self, document_id: &str, chunks: &[IndexedChunk]) -> Result<()> {
        let writer = self.writer()?;
        writer.delete_term(Term::from_field_text(self.f.document_id, document_id));
        for c in chunks {
            let suffix = tokenize::field_suffix(c.text);
            let lang_field = self.f.languages.iter().find(|(s, _)| *s == suffix).map_or(self.f.languages[self.f.languages.len() - 1].1, |(_, f)| *f);
            let mut d = doc!(
                self.f.chunk_id => c.chunk_id,
                self.f.document_id => c.document_id,
                self.f.org_id => c.org_id,
                self.f.header => c.header,
                self.f.text => c.text,
                self.f.section => c.section,
                lang_field => format!("{}\n{}", c.header, c.text),
            );
            for prefix in folder_prefixes(c.folder) {
                d.add_text(self.f.folders, &prefix);
            }
            if let Some(p) = c.page {
                d.add_u64(self.f.page, u64::from(p));
            }
            writer.add_document(d).map_err(tantivy_err)?;
        }
        Ok(())
    }

    /// Removes a document's chunks (not visible until [`Bm25::commit`]).
    pub fn delete_document(&self, document_id: &str) -> Result<()> {
        self.writer()?.delete_term(Term::from_field_text(self.f.document_id, document_id));
        Ok(())
    }

    /// Makes the changes so far durable and visible.
    pub fn commit(&self) -> Result<()> {
        self.writer()?.commit().map_err(tantivy_err)?;
        self.reader.reload().map_err(tantivy_err)
    }

    /// Sees commits made by another process.
    pub fn refresh(&self) -> Result<()> {
        self.reader.reload().map_err(tantivy_err)
    }

    /// The segments a query visits.
    pub fn segment_count(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    /// Merges the segments into one and waits for it (blocking: 4 s at a million chunks).
    /// A segment holding more than half the chunks is left out: a past merge made it, and
    /// rewriting it for a few new segments would cost the whole index's time and disk again.
    /// Commits may go on meanwhile; their new segments are left for the next merge. False when
    /// there was nothing to merge.
    pub fn merge_segments(&self) -> Result<bool> {
        let mut segments = self.index.searchable_segment_metas().map_err(tantivy_err)?;
        segments.sort_by_key(|s| std::cmp::Reverse(s.num_docs()));
        let total: u64 = segments.iter().map(|s| u64::from(s.num_docs())).sum();
        if segments.first().is_some_and(|largest| u64::from(largest.num_docs()) * 2 > total) {
            segments.remove(0);
        }
        if segments.len() < 2 {
            return Ok(false);
        }
        let ids: Vec<_> = segments.iter().map(|s| s.id()).collect();
        // The writer is held only to start the merge, which runs on tantivy's merge thread.
        let merging = self.writer()?.merge(&ids);
        merging.wait().map_err(tantivy_err)?;
        self.reader.reload().map_err(tantivy_err)?;
        Ok(true)
    }

    pub fn chunk_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    fn filtered(&self, org_id: &str, scope: &Scope, scoring: Box<dyn Query>) -> Box<dyn Query> {
        let term = |field, text: &str| -> Box<dyn Query> { Box::new(TermQuery::new(Term::from_field_text(field, text), IndexRecordOption::Basic)) };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, scoring), (Occur::Must, Box::new(ConstScoreQuery::new(term(self.f.org_id, org_id), 0.0)))];
        if let Some(folders) = &scope.folders {
            let any: Vec<(Occur, Box<dyn Query>)> = folders.iter().map(|f| (Occur::Should, term(self.f.folders, f))).collect();
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(any)), 0.0))));
        }
        if let Some(docs) = &scope.documents {
            let any: Vec<(Occur, Box<dyn Query>)> = docs.iter().map(|d| (Occur::Should, term(self.f.document_id, d))).collect();
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(any)), 0.0))));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// The language fields a query is looked up in: its own language's (as chunks are
    /// detected), `plain`, and every language holding at least [`MAJOR_LANGUAGE_SHARE`] of the
    /// indexed words. A language field holding a sliver of the index (chunks of code or tables
    /// taken for French, say) made every common word of a question look rare there: BM25 scored
    /// them high and the search could skip little (twice the time at a million chunks).
    fn fields_for(&self, searcher: &tantivy::Searcher, query: &str) -> Result<Vec<(&'static str, Field)>> {
        let own = tokenize::field_suffix(query);
        let mut tokens = vec![0u64; self.f.languages.len()];
        for segment in searcher.segment_readers() {
            for (i, (_, field)) in self.f.languages.iter().enumerate() {
                tokens[i] += segment.inverted_index(*field).map_err(tantivy_err)?.total_num_tokens();
            }
        }
        let all: u64 = tokens.iter().sum();
        Ok(self
            .f
            .languages
            .iter()
            .zip(&tokens)
            .filter(|((suffix, _), n)| *suffix == own || *suffix == "plain" || (**n as f64) >= MAJOR_LANGUAGE_SHARE * all as f64)
            .map(|((suffix, field), _)| (*suffix, *field))
            .collect())
    }

    /// True when every chunk in every segment, deleted ones included, belongs to `org_id`.
    fn owns_every_chunk(&self, searcher: &tantivy::Searcher, org_id: &str) -> Result<bool> {
        let term = Term::from_field_text(self.f.org_id, org_id);
        for segment in searcher.segment_readers() {
            if segment.inverted_index(self.f.org_id).map_err(tantivy_err)?.doc_freq(&term).map_err(|e| Error::Index(e.to_string()))? != segment.max_doc() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The `k` best chunks for `query` in the organisation and scope, looked up in the language
    /// fields of [`Bm25::fields_for`]. A query with no words (only punctuation) finds nothing;
    /// one of only common words still ranks by BM25.
    pub fn search(&self, org_id: &str, scope: &Scope, query: &str, k: usize) -> Result<Vec<Hit>> {
        let searcher = self.reader.searcher();
        let fields = self.fields_for(&searcher, query)?;
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (suffix, field) in fields {
            let mut analyzer = self.index.tokenizers().get(&analyzer_name(suffix)).ok_or_else(|| Error::Index(format!("analyzer {suffix} missing")))?;
            for t in tokenize::terms(&mut analyzer, query, MAX_QUERY_TERMS) {
                should.push((Occur::Should, Box::new(TermQuery::new(Term::from_field_text(field, &t), IndexRecordOption::WithFreqs))));
            }
        }
        if should.is_empty() || (scope.documents.as_ref().is_some_and(Vec::is_empty)) || scope.folders.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let scoring = Box::new(BooleanQuery::new(should));
        // A bare union of terms lets tantivy skip blocks that cannot reach the top k (block-max
        // WAND); any filter clause makes it score every matching chunk, which at a million chunks
        // is most of the time. So the organisation filter is left out when it would keep
        // everything: when this organisation owns every chunk in the index.
        let query = if scope.folders.is_none() && scope.documents.is_none() && self.owns_every_chunk(&searcher, org_id)? {
            scoring
        } else {
            self.filtered(org_id, scope, scoring)
        };
        let top = searcher.search(&query, &TopDocs::with_limit(k.max(1)).order_by_score()).map_err(tantivy_err)?;
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let d: TantivyDocument = searcher.doc(address).map_err(tantivy_err)?;
            let text = |field| d.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            out.push(Hit { chunk_id: text(self.f.chunk_id), document_id: text(self.f.document_id), score });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chunk<'a>(id: &'a str, doc: &'a str, org: &'a str, folder: &'a str, text: &'a str) -> IndexedChunk<'a> {
        IndexedChunk { chunk_id: id, document_id: doc, org_id: org, folder, header: "Doc", text, page: None, section: "" }
    }

    #[test]
    fn ranks_by_bm25_within_org_and_scope_and_forgets_deleted_documents() {
        let dir = tempfile::tempdir().unwrap();
        let index = Bm25::open(dir.path(), true).unwrap();
        index.put_document("d1", &[chunk("c1", "d1", "o1", "/guides", "Ownership rules: each value in Rust has an owner.")]).unwrap();
        index.put_document("d2", &[chunk("c2", "d2", "o1", "/guides/async", "Futures are polled by an executor; ownership moves into the task.")]).unwrap();
        index.put_document("d3", &[chunk("c3", "d3", "o2", "/", "Ownership of another organisation's secrets.")]).unwrap();
        index.put_document("d4", &[chunk("c4", "d4", "o1", "/", "東京都の天気は晴れです。")]).unwrap();
        index.commit().unwrap();
        let all = Scope::default();
        let hits = index.search("o1", &all, "ownership owners", 10).unwrap();
        assert_eq!(hits.iter().map(|h| h.chunk_id.as_str()).collect::<Vec<_>>(), ["c1", "c2"], "stemmed, other org filtered before ranking");
        let hits = index.search("o1", &Scope { folders: Some(vec!["/guides/async".into()]), documents: None }, "ownership", 10).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].document_id, "d2");
        assert_eq!(index.search("o1", &all, "東京", 10).unwrap()[0].chunk_id, "c4", "CJK without spaces");
        assert!(index.search("o1", &all, "?!  ...", 10).unwrap().is_empty());
        assert!(index.search("o1", &Scope { folders: Some(vec![]), documents: None }, "ownership", 10).unwrap().is_empty());
        let long_query = "ownership ".repeat(1000);
        assert_eq!(index.search("o1", &all, &long_query, 10).unwrap().len(), 2);
        index.delete_document("d1").unwrap();
        index.commit().unwrap();
        assert_eq!(index.search("o1", &all, "ownership", 10).unwrap().len(), 1);
        // Replacing a document's chunks leaves no duplicates.
        index.put_document("d2", &[chunk("c2", "d2", "o1", "/guides/async", "Futures again")]).unwrap();
        index.put_document("d2", &[chunk("c2", "d2", "o1", "/guides/async", "Futures again")]).unwrap();
        index.commit().unwrap();
        assert_eq!(index.search("o1", &all, "futures", 10).unwrap().len(), 1);
        // A second process sees commits read-only.
        let reader = Bm25::open(dir.path(), false).unwrap();
        assert_eq!(reader.search("o1", &all, "futures", 10).unwrap().len(), 1);
        assert!(reader.put_document("x", &[]).is_err());
    }

    #[test]
    fn merging_leaves_one_segment_that_finds_everything_the_segments_did() {
        let dir = tempfile::tempdir().unwrap();
        let index = Bm25::open(dir.path(), true).unwrap();
        for i in 0..4 {
            let (id, text) = (format!("d{i}"), format!("Segment {i} holds the word lighthouse{i} and the word harbour."));
            index.put_document(&id, &[chunk(&id, &id, "o1", "/", &text)]).unwrap();
            index.commit().unwrap();
        }
        index.delete_document("d0").unwrap();
        index.commit().unwrap();
        let before = index.segment_count();
        assert!(before >= 3, "a commit each makes a segment each: {before}");
        assert!(index.merge_segments().unwrap());
        assert_eq!(index.segment_count(), 1);
        let all = Scope::default();
        let ids = |q| index.search("o1", &all, q, 10).unwrap().into_iter().map(|h| h.chunk_id).collect::<Vec<_>>();
        assert_eq!(ids("lighthouse3"), ["d3"]);
        assert_eq!(ids("harbour").len(), 3, "the deleted document stays deleted");
        assert!(!index.merge_segments().unwrap(), "one segment: nothing to merge");
    }

    #[test]
    fn a_segment_holding_most_chunks_is_not_rewritten_for_a_few_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let index = Bm25::open(dir.path(), true).unwrap();
        let chunks: Vec<(String, String)> = (0..10).map(|i| (format!("c{i}"), format!("Old chunk {i} about the harbour."))).collect();
        let old: Vec<IndexedChunk> = chunks.iter().map(|(id, text)| chunk(id, "old", "o1", "/", text)).collect();
        index.put_document("old", &old).unwrap();
        index.commit().unwrap();
        // The writer's two indexing threads may have split the document: make it one segment.
        let ids = index.index.searchable_segment_ids().unwrap();
        if ids.len() > 1 {
            index.writer().unwrap().merge(&ids).wait().unwrap();
            index.reader.reload().unwrap();
        }
        let large = index.index.searchable_segment_ids().unwrap();
        assert_eq!(large.len(), 1);
        for i in 0..2 {
            let id = format!("new{i}");
            index.put_document(&id, &[chunk(&id, &id, "o1", "/", "A new chunk about the harbour.")]).unwrap();
            index.commit().unwrap();
        }
        assert_eq!(index.segment_count(), 3);
        assert!(index.merge_segments().unwrap());
        let after = index.index.searchable_segment_ids().unwrap();
        assert_eq!(after.len(), 2, "the two small segments became one");
        assert!(after.contains(&large[0]), "the large segment is untouched");
        assert_eq!(index.search("o1", &Scope::default(), "harbour", 20).unwrap().len(), 12);
    }

    #[test]
    fn a_language_holding_a_sliver_of_the_index_is_searched_by_questions_in_that_language() {
        let dir = tempfile::tempdir().unwrap();
        let index = Bm25::open(dir.path(), true).unwrap();
        for i in 0..60 {
            let text = format!("Chapter {i}: the borrow checker makes sure that every reference points to valid data for as long as it is used.");
            index.put_document(&format!("e{i}"), &[chunk(&format!("e{i}"), &format!("e{i}"), "o1", "/", &text)]).unwrap();
        }
        index.put_document("g", &[chunk("g", "g", "o1", "/", "Die Katze schläft den ganzen Nachmittag auf dem Sofa und träumt von Mäusen im Garten.")]).unwrap();
        index.commit().unwrap();
        let searcher = index.reader.searcher();
        let english: Vec<&str> = index.fields_for(&searcher, "what does the borrow checker make sure of").unwrap().iter().map(|(s, _)| *s).collect();
        assert_eq!(english, ["en", "plain"], "German holds under 5% of the words");
        let german: Vec<&str> = index.fields_for(&searcher, "Wo schläft die Katze am Nachmittag am liebsten?").unwrap().iter().map(|(s, _)| *s).collect();
        assert!(german.contains(&"de"), "{german:?}");
        assert_eq!(index.search("o1", &Scope::default(), "Wo schläft die Katze am Nachmittag am liebsten?", 3).unwrap()[0].chunk_id, "g");
        assert_eq!(index.search("o1", &Scope::default(), "what does the borrow checker make sure of", 3).unwrap().len(), 3);
    }

    #[test]
    fn an_index_of_one_organisation_is_searched_without_its_filter_yet_stays_closed_to_others() {
        let dir = tempfile::tempdir().unwrap();
        let index = Bm25::open(dir.path(), true).unwrap();
        let words = ["borrow", "lifetime", "trait", "closure", "iterator"];
        for i in 0..200 {
            let text = format!("the {} and the {} in a program", words[i % 5], words[(i / 5) % 5]);
            index.put_document(&format!("d{i}"), &[chunk(&format!("c{i}"), &format!("d{i}"), "o1", "/", &text)]).unwrap();
        }
        index.commit().unwrap();
        let searcher = index.reader.searcher();
        assert!(index.owns_every_chunk(&searcher, "o1").unwrap());
        assert!(!index.owns_every_chunk(&searcher, "o2").unwrap());
        let hits = index.search("o1", &Scope::default(), "the borrow and the closure", 5).unwrap();
        assert_eq!(hits.len(), 5);
        // 16 chunks hold both rare words ("the borrow and the closure" or the reverse): they
        // outrank the many holding one, and "the" and "and" (in every chunk) decide nothing.
        for h in &hits {
            let n: usize = h.chunk_id[1..].parse().unwrap();
            assert!(matches!((n % 5, (n / 5) % 5), (0, 3) | (3, 0)), "{} lacks a rare word: {hits:?}", h.chunk_id);
        }
        assert!(index.search("o2", &Scope::default(), "the borrow", 5).unwrap().is_empty(), "another organisation sees nothing");
        // A second organisation's chunk brings the filter back.
        index.put_document("x", &[chunk("cx", "x", "o2", "/", "the borrow checker of o2")]).unwrap();
        index.commit().unwrap();
        assert!(!index.owns_every_chunk(&index.reader.searcher(), "o1").unwrap());
        assert!(index.search("o1", &Scope::default(), "the borrow", 50).unwrap().iter().all(|h| h.chunk_id != "cx"));
        assert_eq!(index.search("o2", &Scope::default(), "the borrow", 5).unwrap()[0].chunk_id, "cx");
    }
}
