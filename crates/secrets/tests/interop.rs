//! What we encrypt must open with implementations no one here wrote: Debian's `age` command
//! unwraps the data key, and the `sops-age` package from the npm registry decrypts the whole file.
//! `scripts/test.sh` installs both (`age` from Debian, `sops-age` into target/interop).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test suite")]

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use tale_secrets::{sops, AgeKeys};

fn fixture() -> (tempfile::TempDir, age::x25519::Identity, PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let id = age::x25519::Identity::generate();
    let plain = json!({
        "apiKey": "sk-or-v1-0123456789abcdef",
        "modelKeys": {"openai/gpt-5.2": "sk-model-key", "empty": ""},
        "nested": {"list": ["a", 7, true, 2.5]},
        "comment_unencrypted": "stays readable"
    });
    let enc = sops::encrypt(plain.as_object().unwrap(), &[id.to_public()]).unwrap();
    let path = dir.path().join("openrouter.secrets.json");
    tale_secrets::file::write_document(&path, &enc).unwrap();
    (dir, id, path, plain)
}

#[test]
fn debian_age_unwraps_the_data_key() {
    let (dir, id, path, _) = fixture();
    use age::secrecy::ExposeSecret;
    let key_file = dir.path().join("keys.txt");
    std::fs::write(&key_file, format!("# test key\n{}\n", id.to_string().expose_secret())).unwrap();
    let doc = tale_secrets::file::read_document(&path).unwrap();
    let enc = doc["sops"]["age"][0]["enc"].as_str().unwrap().to_owned();
    let armored = dir.path().join("datakey.age");
    std::fs::write(&armored, enc).unwrap();
    let out = Command::new("age").arg("-d").arg("-i").arg(&key_file).arg(&armored).output().expect("Debian's age must be installed (scripts/test.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ours = sops::data_key(&doc, &AgeKeys::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap().identities).unwrap();
    assert_eq!(out.stdout, ours.to_vec(), "age recovers the same 32-byte data key");
}

#[test]
fn npm_sops_age_decrypts_what_we_encrypt() {
    let (dir, id, path, plain) = fixture();
    use age::secrecy::ExposeSecret;
    let modules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/interop/node_modules");
    assert!(modules.join("sops-age").exists(), "sops-age is not installed: run scripts/test.sh");
    let script = dir.path().join("decrypt.mjs");
    std::fs::write(
        &script,
        format!(
            "import {{ decryptSops }} from '{}';\nconst out = await decryptSops({{ path: process.argv[2], secretKey: process.env.AGE_KEY }});\nprocess.stdout.write(JSON.stringify(out));\n",
            modules.join("sops-age/dist/index.js").display()
        ),
    )
    .unwrap();
    let out = Command::new("node").arg(&script).arg(&path).env("AGE_KEY", id.to_string().expose_secret()).output().unwrap();
    assert!(out.status.success(), "sops-age failed: {}", String::from_utf8_lossy(&out.stderr));
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs, plain);
}
