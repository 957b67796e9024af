-- Threads, messages (a tree per thread), runs with their execution logs, the usage ledger,
-- files (bytes live in the object store) and artifact versions.

CREATE TABLE threads (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id),
    user_id          TEXT NOT NULL REFERENCES users(id),
    agent_slug       TEXT NOT NULL,
    title            TEXT NOT NULL,
    head_id          TEXT,
    todos            TEXT NOT NULL DEFAULT '[]',
    share_token_hash TEXT UNIQUE,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX threads_by_owner ON threads(org_id, user_id, updated_at);

CREATE TABLE messages (
    id          TEXT PRIMARY KEY,
    thread_id   TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    parent_id   TEXT,
    role        TEXT NOT NULL CHECK (role IN ('user','assistant')),
    content     TEXT NOT NULL,
    parts       TEXT NOT NULL DEFAULT '[]',
    attachments TEXT NOT NULL DEFAULT '[]',
    status      TEXT NOT NULL,
    error       TEXT,
    run_id      TEXT,
    model       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX messages_by_thread ON messages(thread_id, created_at);
CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    thread_id     TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    message_id    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    agent_slug    TEXT NOT NULL,
    provider      TEXT,
    model         TEXT,
    status        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_cents    REAL NOT NULL DEFAULT 0,
    error         TEXT,
    log           TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_by_thread ON runs(thread_id, created_at);
CREATE INDEX runs_by_org ON runs(org_id, created_at);
CREATE INDEX runs_running ON runs(status) WHERE status = 'running';

-- Kept when threads are deleted: it is the organisation's record of what models cost.
CREATE TABLE usage_ledger (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    agent_slug       TEXT,
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    run_id           TEXT,
    input_tokens     INTEGER NOT NULL,
    output_tokens    INTEGER NOT NULL,
    cached_tokens    INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_cents       REAL NOT NULL,
    at               INTEGER NOT NULL
);
CREATE INDEX usage_by_org_time ON usage_ledger(org_id, at);

CREATE TABLE files (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    thread_id  TEXT REFERENCES threads(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    origin     TEXT NOT NULL CHECK (origin IN ('upload','generated')),
    created_at INTEGER NOT NULL
);
CREATE INDEX files_by_sha ON files(sha256);

CREATE TABLE artifacts (
    id         TEXT NOT NULL,
    version    INTEGER NOT NULL,
    org_id     TEXT NOT NULL,
    thread_id  TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    title      TEXT NOT NULL,
    language   TEXT,
    content    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (id, version)
);
