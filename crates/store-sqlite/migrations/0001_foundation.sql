-- Accounts, organisations, memberships, invitations, API keys and the audit log.

CREATE TABLE users (
    id                   TEXT PRIMARY KEY,
    email                TEXT NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    password_hash        TEXT NOT NULL,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    password_changed_at  INTEGER NOT NULL
);

CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    slug       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    settings   TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE memberships (
    org_id    TEXT NOT NULL REFERENCES organizations(id),
    user_id   TEXT NOT NULL REFERENCES users(id),
    role      TEXT NOT NULL CHECK (role IN ('owner','admin','developer','editor','member','disabled')),
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships(user_id);
-- Exactly one Owner per organisation, enforced by the database as well as by the rules.
CREATE UNIQUE INDEX memberships_one_owner ON memberships(org_id) WHERE role = 'owner';

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    token_hash   TEXT NOT NULL UNIQUE,
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE login_attempts (
    email_key    TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_by_user ON api_keys(user_id, org_id);

CREATE TABLE invitations (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    email       TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    invited_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    accepted_at INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX invitations_by_org ON invitations(org_id);

CREATE TABLE audit_log (
    gid             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    org_id          TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    actor_id        TEXT NOT NULL,
    actor_email     TEXT,
    actor_role      TEXT,
    actor_type      TEXT NOT NULL,
    action          TEXT NOT NULL,
    category        TEXT NOT NULL,
    resource_type   TEXT NOT NULL,
    resource_id     TEXT,
    resource_name   TEXT,
    previous_state  TEXT,
    new_state       TEXT,
    changed_fields  TEXT,
    session_id      TEXT,
    ip_address      TEXT,
    user_agent      TEXT,
    request_id      TEXT,
    timestamp       INTEGER NOT NULL,
    status          TEXT NOT NULL,
    error_message   TEXT,
    metadata        TEXT,
    integrity_hash  TEXT NOT NULL,
    previous_hash   TEXT NOT NULL,
    chain_successor TEXT,
    UNIQUE (org_id, seq)
);
CREATE INDEX audit_by_org_time ON audit_log(org_id, timestamp);

-- Append-only: the only permitted update links a row to its successor, once.
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit log rows cannot be deleted');
END;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN OLD.chain_successor IS NOT NULL
  OR NEW.integrity_hash IS NOT OLD.integrity_hash
  OR NEW.previous_hash IS NOT OLD.previous_hash
  OR NEW.action IS NOT OLD.action
  OR NEW.actor_id IS NOT OLD.actor_id
  OR NEW.timestamp IS NOT OLD.timestamp
  OR NEW.previous_state IS NOT OLD.previous_state
  OR NEW.new_state IS NOT OLD.new_state
  OR NEW.resource_name IS NOT OLD.resource_name
BEGIN
    SELECT RAISE(ABORT, 'audit log rows are append-only');
END;
