//! What the knowledge tools may read: one organisation's documents in the knowledge store.
//! Without a store (not opened) every call fails, which the tools turn into "nothing found" and
//! a warning in the run log, so chats keep working.

use async_trait::async_trait;
use std::sync::Arc;
use tale_agent::tools::knowledge::{KnowledgeDocument, KnowledgeHost, KnowledgePassage, MAX_LISTED_DOCUMENTS};
use tale_knowledge::bm25::Scope;
use tale_knowledge::ingest::{clean_folder, Knowledge};
use tale_knowledge::store::{Document, StoredChunk};

pub struct OrgKnowledge {
    knowledge: Option<Arc<Knowledge>>,
    org_id: String,
    org_slug: String,
}

impl OrgKnowledge {
    pub fn new(knowledge: Option<Arc<Knowledge>>, org_id: &str, org_slug: &str) -> Self {
        OrgKnowledge { knowledge, org_id: org_id.to_owned(), org_slug: org_slug.to_owned() }
    }

    fn store(&self) -> Result<&Knowledge, String> {
        self.knowledge.as_deref().ok_or_else(|| "the knowledge store is not open in this server".to_owned())
    }
}

/// The page that shows a document with one passage marked (`tale-http`'s route table).
pub fn passage_link(org_slug: &str, document_id: &str, chunk_id: &str) -> String {
    format!("/dashboard/{org_slug}/knowledge/documents/{}?chunk={}#passage", encode(document_id), encode(chunk_id))
}

fn encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn document(d: Document) -> KnowledgeDocument {
    KnowledgeDocument {
        id: d.id,
        name: d.name,
        title: d.title,
        folder: d.folder,
        media_type: d.media_type,
        size: d.size,
        status: d.status,
        error: d.error,
        chunk_count: d.chunk_count,
        created_at: d.created_at,
    }
}

fn passage(c: StoredChunk, document: &str, title: Option<String>, folder: &str) -> KnowledgePassage {
    KnowledgePassage {
        document_id: c.document_id,
        document: document.to_owned(),
        title,
        folder: folder.to_owned(),
        section: c.section,
        page: c.page,
        chunk_id: c.id,
        position: c.position,
        text: c.text,
    }
}

#[async_trait]
impl KnowledgeHost for OrgKnowledge {
    async fn search(&self, query: &str, folder: Option<&str>, k: usize) -> Result<Vec<KnowledgePassage>, String> {
        let scope = Scope { folders: folder.map(|f| vec![clean_folder(f)]), documents: None };
        let found = self.store()?.search(&self.org_id, &scope, query, k).await.map_err(|e| e.to_string())?;
        Ok(found.into_iter().map(|p| passage(p.chunk, &p.document, p.title, &p.folder)).collect())
    }

    async fn documents(&self, folder: &str) -> Result<Vec<KnowledgeDocument>, String> {
        let docs = self.store()?.meta.documents(&self.org_id, &clean_folder(folder), MAX_LISTED_DOCUMENTS).await.map_err(|e| e.to_string())?;
        Ok(docs.into_iter().map(document).collect())
    }

    async fn document(&self, id: &str) -> Result<Option<KnowledgeDocument>, String> {
        let d = self.store()?.meta.document(id).await.map_err(|e| e.to_string())?;
        // Other organisations' documents do not exist from here.
        Ok(d.filter(|d| d.org_id == self.org_id).map(document))
    }

    async fn chunks(&self, d: &KnowledgeDocument, from: i64, limit: usize) -> Result<Vec<KnowledgePassage>, String> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let chunks = self.store()?.meta.chunk_range(&d.id, from, limit).await.map_err(|e| e.to_string())?;
        Ok(chunks.into_iter().map(|c| passage(c, &d.name, d.title.clone(), &d.folder)).collect())
    }

    fn link(&self, document_id: &str, chunk_id: &str) -> String {
        passage_link(&self.org_slug, document_id, chunk_id)
    }
}
