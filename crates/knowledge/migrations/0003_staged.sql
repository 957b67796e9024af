-- A document indexed and waiting for its batch's commit (BM25 commit + completed, together):
-- still `running` to people, no longer counted against its organisation's concurrency cap.
ALTER TABLE documents ADD COLUMN staged INTEGER NOT NULL DEFAULT 0;
