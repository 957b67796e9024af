//! `tale secrets encrypt|decrypt|edit`: the operator's tools for SOPS secrets files.

use crate::cli::SecretsCommand;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use tale_secrets::file::{decrypt_document, read_document, write_document};
use tale_secrets::{sops, AgeKeys};

fn keys() -> Result<AgeKeys> {
    Ok(AgeKeys::from_env(&crate::settings::process_env)?)
}

pub fn run(command: SecretsCommand) -> Result<()> {
    match command {
        SecretsCommand::Encrypt { recipients, file } => {
            let recipients = recipients.iter().map(|r| sops::recipient(r).map_err(anyhow::Error::msg)).collect::<Result<Vec<_>>>()?;
            let doc = read_document(&file)?;
            if sops::is_sops(&doc) {
                bail!("{} is already encrypted; use `tale secrets edit` to change it", file.display());
            }
            let enc = sops::encrypt(&doc, &recipients).map_err(|e| anyhow::anyhow!("{}: {e:?}", file.display()))?;
            write_document(&file, &enc)?;
            eprintln!("encrypted {} to {} recipient(s)", file.display(), recipients.len());
        }
        SecretsCommand::Decrypt { file } => {
            let (doc, _) = decrypt_document(&file, &keys()?)?;
            println!("{}", serde_json::to_string_pretty(&serde_json::Value::Object(doc))?);
        }
        SecretsCommand::Edit { file } => edit(&file)?,
    }
    Ok(())
}

fn edit(file: &std::path::Path) -> Result<()> {
    let original = read_document(file)?;
    let encrypted = sops::is_sops(&original);
    let recipients = sops::recipients(&original).iter().map(|r| sops::recipient(r).map_err(anyhow::Error::msg)).collect::<Result<Vec<_>>>()?;
    let (plain, _) = decrypt_document(file, &keys()?)?;
    // The plaintext lives only in a 0600 file next to the original, removed whatever happens.
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(".{}.edit.{}.json", file.file_name().and_then(|n| n.to_str()).unwrap_or("secrets"), std::process::id()));
    struct Cleanup<'a>(&'a std::path::Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _cleanup = Cleanup(&tmp);
    let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(&serde_json::Value::Object(plain.clone()))?.as_bytes())?;
    drop(f);
    let editor = std::env::var("EDITOR").ok().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "vi".into());
    let status = std::process::Command::new("sh").arg("-c").arg(format!("{editor} \"$1\"")).arg("sh").arg(&tmp).status().with_context(|| format!("cannot run editor '{editor}'"))?;
    if !status.success() {
        bail!("the editor exited with {status}; {} is unchanged", file.display());
    }
    let edited: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&tmp)?)
        .with_context(|| format!("the edited text is not valid JSON; {} is unchanged", file.display()))?;
    let serde_json::Value::Object(edited) = edited else { bail!("the edited text must be a JSON object; {} is unchanged", file.display()) };
    if edited == plain {
        eprintln!("no changes");
        return Ok(());
    }
    let out = if encrypted { sops::encrypt(&edited, &recipients).map_err(|e| anyhow::anyhow!("{e:?}"))? } else { edited };
    write_document(file, &out)?;
    eprintln!("saved {}", file.display());
    Ok(())
}
