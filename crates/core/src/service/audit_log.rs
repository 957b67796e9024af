//! Reading, exporting and verifying the audit log.

use super::Services;
use crate::audit::{self, AuditFilter, AuditRecord, ChainReport};
use crate::permission::{Grant, Permission};
use crate::Result;

/// Exports cover at most this many rows of the current filter.
pub const EXPORT_LIMIT: u32 = 100_000;

impl Services {
    pub async fn audit_entries(&self, grant: &Grant, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        grant.require(Permission::AuditRead)?;
        let mut filter = filter.clone();
        filter.limit = filter.limit.clamp(1, 500);
        let key = format!("{}|{filter:?}", grant.org_id);
        if let Some(rows) = self.cache.audit_page(&key) {
            return Ok(rows);
        }
        let generation = self.cache.generation();
        let rows = self.store.audit_query(&grant.org_id, &filter).await?;
        self.cache.put_audit_page(generation, &key, &rows);
        Ok(rows)
    }

    /// The rows matching the filter (not the whole log), as the reference exports them.
    pub async fn audit_export(&self, grant: &Grant, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        grant.require(Permission::AuditRead)?;
        let mut filter = filter.clone();
        filter.limit = EXPORT_LIMIT;
        self.store.audit_query(&grant.org_id, &filter).await
    }

    pub async fn verify_audit(&self, grant: &Grant) -> Result<ChainReport> {
        grant.require(Permission::AuditRead)?;
        let rows = self.store.audit_chain(&grant.org_id).await?;
        Ok(audit::verify_chain(&grant.org_id, &rows))
    }

    /// Operator command: every organisation's chain.
    pub async fn verify_all_audit(&self) -> Result<Vec<(String, ChainReport)>> {
        let mut out = Vec::new();
        for org in self.store.all_orgs().await? {
            let rows = self.store.audit_chain(&org.id).await?;
            out.push((org.slug.clone(), audit::verify_chain(&org.id, &rows)));
        }
        Ok(out)
    }
}
