//! `tale admin ...`: operator commands over the same services the API uses. They open the store
//! directly (SQLite allows this next to a running server) and never take the server lock; a
//! running server picks their changes up through the change feed.

use crate::cli::{AdminCommand, ApiKeyCommand, CommonArgs};
use crate::server::{open_store, services};
use crate::settings;
use anyhow::{bail, Result};
use std::io::Write;
use std::sync::Arc;
use tale_core::role::Role;
use tale_core::service::Services;
use tale_core::store::Store;

async fn open(common: &CommonArgs) -> Result<Arc<Services>> {
    let config = settings::load(common, None, &settings::process_env)?;
    crate::logging::init(&config);
    if !config.data_dir.join("tale.db").exists() {
        crate::datadir::prepare(&config.data_dir)?;
    }
    let store: Arc<dyn Store> = Arc::new(open_store(&config).await?);
    services(&config, store)
}

fn role(s: &str) -> Result<Role> {
    Ok(s.parse::<Role>()?)
}

pub async fn run(command: AdminCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        AdminCommand::CreateUser { common, email, password, role: r, name, org } => {
            let role = role(&r)?;
            let s = open(&common).await?;
            let user = s.admin_create_user(&email, name.as_deref(), &password, role, &org).await?;
            writeln!(out, "created {} ({}) as {} in {}", user.email, user.id, role, org)?;
        }
        AdminCommand::SetRole { common, email, role: r, org } => {
            let role = role(&r)?;
            let s = open(&common).await?;
            let changes = s.admin_set_role(&email, role, &org).await?;
            if changes.is_empty() {
                writeln!(out, "{email} already has role {role} in {org}")?;
            }
            for c in changes {
                let who = s.store.user_by_id(&c.user_id).await?.map(|u| u.email).unwrap_or(c.user_id);
                let to = c.to.map(|r| r.to_string()).unwrap_or_else(|| "removed".into());
                writeln!(out, "{who}: {} -> {to}", c.from)?;
            }
        }
        AdminCommand::ResetPassword { common, email, password } => {
            let s = open(&common).await?;
            let generated = password.is_none();
            let new = s.admin_reset_password(&email, password.as_deref()).await?;
            if generated {
                writeln!(out, "{new}")?;
                eprintln!("new password for {email} printed above; it must be changed at next sign-in, and all sessions were ended");
            } else {
                writeln!(out, "password for {email} reset; it must be changed at next sign-in, and all sessions were ended")?;
            }
        }
        AdminCommand::ApiKey { command: ApiKeyCommand::Create { common, email, org, name } } => {
            let s = open(&common).await?;
            let created = s.admin_create_api_key(&email, &org, &name).await?;
            writeln!(out, "{}", created.secret)?;
        }
        AdminCommand::VerifyAudit { common } => {
            let s = open(&common).await?;
            let mut broken = false;
            for (slug, report) in s.verify_all_audit().await? {
                match report.broken {
                    None => writeln!(out, "ok      {slug}: {} entries, chain intact", report.rows)?,
                    Some(b) => {
                        broken = true;
                        writeln!(out, "BROKEN  {slug}: first broken link at entry #{} (id {}): {}", b.seq, b.id, b.reason)?;
                    }
                }
            }
            if broken {
                bail!("the audit log has been tampered with or damaged");
            }
        }
    }
    Ok(())
}
