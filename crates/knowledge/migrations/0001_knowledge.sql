-- The knowledge store: documents (their state in the ingestion queue included) and chunks.
-- Kept apart from the operational database; the BM25 index lives beside it in `bm25/`.

CREATE TABLE documents (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    folder      TEXT NOT NULL DEFAULT '/',
    name        TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    title       TEXT,
    status      TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed')),
    error       TEXT,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    -- A running job whose lease ran out belongs to a worker that died: the watchdog requeues it.
    lease_until INTEGER,
    uploaded_by TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    indexed_at  INTEGER
);
CREATE INDEX documents_queue ON documents(status, created_at);
CREATE INDEX documents_by_org ON documents(org_id, folder, name);
CREATE INDEX documents_by_sha ON documents(sha256);

CREATE TABLE chunks (
    id           TEXT PRIMARY KEY,
    document_id  TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    org_id       TEXT NOT NULL,
    position     INTEGER NOT NULL,
    page         INTEGER,
    section      TEXT NOT NULL,
    header       TEXT NOT NULL,
    text         TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    UNIQUE (document_id, position)
);
CREATE INDEX chunks_by_hash ON chunks(content_hash);
