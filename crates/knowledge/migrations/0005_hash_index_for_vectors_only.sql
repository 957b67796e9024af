-- Chunks are looked up by content hash only to reuse a vector already computed for the same text,
-- so only chunks with a vector need the index. Hashes are random: every chunk indexed here cost a
-- write to a random index page, for nothing while a chunk has no vector (BM25-only ingestion, or
-- before the embedding model is loaded).
DROP INDEX chunks_by_hash;
CREATE INDEX chunks_by_hash ON chunks(content_hash) WHERE embedding IS NOT NULL;
