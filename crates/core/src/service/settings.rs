//! Organisation settings: read by Admins, replaced as a whole, audited with before/after.

use super::{Principal, Services};
use crate::audit::{AuditDraft, Category, RequestMeta};
use crate::permission::{Grant, Permission};
use crate::settings::OrgSettings;
use crate::{Error, Result};

impl Services {
    pub(crate) async fn org_settings_of(&self, org_id: &str) -> Result<OrgSettings> {
        let stored = match self.cache.settings(org_id) {
            Some(v) => v,
            None => {
                let generation = self.cache.generation();
                let v = self.store.settings(org_id).await?;
                self.cache.put_settings(generation, org_id, &v);
                v
            }
        };
        match stored {
            Some(v) => serde_json::from_value(v).map_err(|e| Error::Store(format!("stored settings unreadable: {e}"))),
            None => Ok(OrgSettings::default()),
        }
    }

    pub async fn settings(&self, grant: &Grant) -> Result<OrgSettings> {
        grant.require(Permission::OrgSettings)?;
        self.org_settings_of(&grant.org_id).await
    }

    pub async fn update_settings(&self, principal: &Principal, grant: &Grant, settings: OrgSettings, meta: &RequestMeta) -> Result<OrgSettings> {
        grant.require(Permission::OrgSettings)?;
        settings.validate()?;
        let value = serde_json::to_value(&settings).map_err(|e| Error::Internal(e.to_string()))?;
        let defaults = serde_json::to_value(OrgSettings::default()).map_err(|e| Error::Internal(e.to_string()))?;
        let audit = AuditDraft::new(&grant.org_id, &Self::actor(principal, Some(grant)), meta, Category::Admin, "settings_updated", "settings")
            .resource(&grant.org_id, &grant.org_slug)
            .states(Some(defaults), None);
        self.store.put_settings(&grant.org_id, &value, audit).await?;
        self.changed();
        Ok(settings)
    }
}
