//! `tale secrets encrypt|decrypt|edit` with keys made by Debian's `age-keygen`, and the errors an
//! operator meets: no key, wrong key, tampered file, world-readable plaintext. No secret value may
//! appear in any error.

use crate::harness::test_tmp;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn tale(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tale"));
    cmd.args(args).env_remove("SOPS_AGE_KEY").env_remove("SOPS_AGE_KEY_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// A key file from `age-keygen`, and its public recipient.
fn keygen(path: &Path) -> String {
    let out = Command::new("age-keygen").arg("-o").arg(path).output().expect("Debian's age must be installed (scripts/test.sh)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    text.trim().strip_prefix("Public key: ").unwrap_or_else(|| panic!("unexpected age-keygen output: {text}")).to_owned()
}

#[test]
fn encrypt_decrypt_edit_and_the_errors_around_them() {
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    let key_file = dir.path().join("keys.txt");
    let recipient = keygen(&key_file);
    let other_key = dir.path().join("other.txt");
    keygen(&other_key);
    let file = dir.path().join("openrouter.secrets.json");
    let f = file.to_str().unwrap();
    std::fs::write(&file, r#"{"apiKey": "sk-old-0123456789", "modelKeys": {"openai/gpt-5.2": "sk-model"}}"#).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    // World-readable plaintext is refused, with the fix.
    let out = tale(&["secrets", "decrypt", f], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("can be read by other users (mode 644)") && err.contains("chmod 600"), "{err}");

    let out = tale(&["secrets", "encrypt", "--age", &recipient, f], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let on_disk = std::fs::read_to_string(&file).unwrap();
    assert!(on_disk.contains("\"sops\"") && !on_disk.contains("sk-old") && on_disk.contains(&recipient));
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let again = tale(&["secrets", "encrypt", "--age", &recipient, f], &[]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already encrypted"));

    let with_key = [("SOPS_AGE_KEY_FILE", key_file.to_str().unwrap())];
    let out = tale(&["secrets", "decrypt", f], &with_key);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plain: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plain["apiKey"], "sk-old-0123456789");
    assert_eq!(plain["modelKeys"]["openai/gpt-5.2"], "sk-model");
    // The inline form works too.
    let inline = std::fs::read_to_string(&key_file).unwrap();
    let secret_line = inline.lines().find(|l| l.starts_with("AGE-SECRET-KEY-")).unwrap();
    assert!(tale(&["secrets", "decrypt", f], &[("SOPS_AGE_KEY", secret_line)]).status.success());

    for (env, needle) in [
        (vec![], "no age key is configured: set SOPS_AGE_KEY or SOPS_AGE_KEY_FILE"),
        (vec![("SOPS_AGE_KEY_FILE", other_key.to_str().unwrap())], "none of the configured age keys can decrypt it"),
    ] {
        let out = tale(&["secrets", "decrypt", f], &env);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle) && err.contains("openrouter.secrets.json"), "{err}");
        assert!(!err.contains("sk-"), "no secret in errors: {err}");
    }

    // Edit: the editor sees plaintext; the file stays encrypted to the same recipient.
    let out = tale(&["secrets", "edit", f], &[with_key[0], ("EDITOR", "sed -i s/sk-old/sk-new/")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let on_disk = std::fs::read_to_string(&file).unwrap();
    assert!(!on_disk.contains("sk-new") && on_disk.contains(&recipient));
    let out = tale(&["secrets", "decrypt", f], &with_key);
    assert!(String::from_utf8_lossy(&out.stdout).contains("sk-new-0123456789"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().contains(".edit.")).collect();
    assert!(leftovers.is_empty(), "no plaintext left behind");
    // An editor that breaks the JSON changes nothing.
    let out = tale(&["secrets", "edit", f], &[with_key[0], ("EDITOR", "sed -i s/{/[/")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unchanged"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), on_disk);

    // Tampering: drop an encrypted value; what is left decrypts but the MAC does not match.
    let mut doc: serde_json::Value = serde_json::from_str(&on_disk).unwrap();
    doc.as_object_mut().unwrap().remove("modelKeys");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = tale(&["secrets", "decrypt", f], &with_key);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAC mismatch"), "{}", String::from_utf8_lossy(&out.stderr));
}
