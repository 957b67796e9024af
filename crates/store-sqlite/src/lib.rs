//! The embedded operational store: SQLite in WAL mode under the data dir, implementing every store
//! trait of `tale-core`. Migrations live in `migrations/` and run at open.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions so a read-then-write (the audit chain head, the
//! membership rules) never races another writer, in this process or another one on the same file.
//!
//! Architecture invariant: no business rules here beyond calling `tale_core::rules`; callers reach
//! this crate only through the traits.

mod accounts;
mod audit;
mod chat;
mod orgs;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tale_core::Error;


/// Why the store could not be opened. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path} is not a Tale database (the file is corrupt or not SQLite): move it aside and restore a backup, or start with an empty data dir")]
    NotADatabase { path: PathBuf },
    #[error("{path} cannot be written: {source}. Check the data dir's permissions and free space")]
    NotWritable { path: PathBuf, source: sqlx::Error },
    #[error("{path}: database migration failed: {source}")]
    Migration { path: PathBuf, source: sqlx::migrate::MigrateError },
    #[error("{path}: {source}")]
    Other { path: PathBuf, source: sqlx::Error },
}

/// SQLite-backed implementation of `tale_core::store::Store`.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn sqlite_code(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| classify(path, e))?;
        // Touches the schema so a corrupt file fails here, with a clear message.
        sqlx::query("PRAGMA schema_version")
            .execute(&pool)
            .await
            .map_err(|e| classify(path, e))?;
        sqlx::migrate!("./migrations").run(&pool).await.map_err(|source| match source {
            sqlx::migrate::MigrateError::Execute(e) => classify(path, e),
            source => OpenError::Migration { path: path.to_owned(), source },
        })?;
        Ok(SqliteStore { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Direct access for tests that play an attacker editing the file.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) async fn write_tx(&self) -> tale_core::Result<Transaction<'static, Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
    }
}

fn classify(path: &Path, e: sqlx::Error) -> OpenError {
    let code = sqlite_code(&e);
    let text = e.to_string();
    match code.as_deref() {
        Some("26") => OpenError::NotADatabase { path: path.to_owned() },
        Some("8") | Some("14") | Some("1032") | Some("520") | Some("264") => {
            OpenError::NotWritable { path: path.to_owned(), source: e }
        }
        _ if text.contains("not a database") => OpenError::NotADatabase { path: path.to_owned() },
        _ if text.contains("readonly") || text.contains("unable to open") => {
            OpenError::NotWritable { path: path.to_owned(), source: e }
        }
        _ => OpenError::Other { path: path.to_owned(), source: e },
    }
}

/// Maps a database error to the domain error. Unique violations become `Conflict`.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation() {
            return Error::Conflict(format!("already exists ({})", db.message()));
        }
    Error::Store(e.to_string())
}

pub(crate) fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

pub(crate) fn parse_json(s: Option<String>) -> tale_core::Result<Option<serde_json::Value>> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| Error::Store(format!("stored JSON unreadable: {e}"))))
        .transpose()
}

#[async_trait::async_trait]
impl tale_core::store::Store for SqliteStore {
    async fn ping(&self) -> tale_core::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }
}
