-- Embeddings beside their chunks: f32 little-endian, with the model that made them, so a chunk
-- whose text is unchanged is never embedded again and a change of model is detected.
-- `vkey` names a chunk in the vector index; it is never reused (a re-indexed document's chunks
-- get new keys), so a snapshot of the index can be reconciled with this table by key alone.

ALTER TABLE chunks ADD COLUMN embedding BLOB;
ALTER TABLE chunks ADD COLUMN embedding_model TEXT;
ALTER TABLE chunks ADD COLUMN vkey INTEGER;

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
UPDATE chunks SET vkey = rowid;
INSERT INTO counters (name, value) SELECT 'vkey', COALESCE(MAX(vkey), 0) FROM chunks;

CREATE UNIQUE INDEX chunks_by_vkey ON chunks(vkey);
CREATE INDEX chunks_by_model ON chunks(embedding_model);
