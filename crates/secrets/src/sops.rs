//! SOPS JSON documents encrypted to age recipients: encrypt, decrypt and verify the MAC.

use aes_gcm::aead::generic_array::typenum::U32;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};
use std::io::{Read, Write};
use std::str::FromStr;

/// SOPS uses GCM with a 32-byte nonce.
type Gcm = AesGcm<Aes256, U32>;

const UNENCRYPTED_SUFFIX: &str = "_unencrypted";
/// The SOPS format version we write (files from 3.x are read).
pub const SOPS_VERSION: &str = "3.9.0";

/// Why a document could not be handled; the caller adds the file name.
#[derive(Debug, PartialEq)]
pub enum SopsError {
    NotSops,
    NoIdentity,
    WrongKey(Vec<String>),
    Mac,
    Value(String),
    Invalid(String),
}

pub fn is_sops(doc: &Map<String, Value>) -> bool {
    doc.contains_key("sops")
}

fn aad_path(path: &[String]) -> String {
    let mut s = path.join(":");
    s.push(':');
    s
}

fn seal(key: &[u8; 32], plain: &[u8], kind: &str, aad: &str) -> Result<String, SopsError> {
    let mut iv = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut iv);
    let cipher = Gcm::new(GenericArray::from_slice(key));
    let out = cipher
        .encrypt(GenericArray::from_slice(&iv), Payload { msg: plain, aad: aad.as_bytes() })
        .map_err(|_| SopsError::Invalid("AES-GCM encryption failed".into()))?;
    let (data, tag) = out.split_at(out.len() - 16);
    Ok(format!("ENC[AES256_GCM,data:{},iv:{},tag:{},type:{kind}]", B64.encode(data), B64.encode(iv), B64.encode(tag)))
}

/// Opens an `ENC[...]` value: (plaintext bytes, type).
fn open(key: &[u8; 32], value: &str, aad: &str) -> Option<(Vec<u8>, String)> {
    let inner = value.strip_prefix("ENC[AES256_GCM,data:")?.strip_suffix(']')?;
    let (data, rest) = inner.split_once(",iv:")?;
    let (iv, rest) = rest.split_once(",tag:")?;
    let (tag, kind) = rest.split_once(",type:")?;
    let (data, iv, tag) = (B64.decode(data).ok()?, B64.decode(iv).ok()?, B64.decode(tag).ok()?);
    if iv.len() != 32 || tag.len() != 16 {
        return None;
    }
    let mut msg = data;
    msg.extend_from_slice(&tag);
    let cipher = Gcm::new(GenericArray::from_slice(key));
    let plain = cipher.decrypt(GenericArray::from_slice(&iv), Payload { msg: &msg, aad: aad.as_bytes() }).ok()?;
    Some((plain, kind.to_owned()))
}

/// The bytes SOPS hashes and encrypts for a leaf, and its type tag.
fn leaf_bytes(v: &Value) -> Option<(Vec<u8>, &'static str)> {
    match v {
        Value::String(s) => Some((s.as_bytes().to_vec(), "str")),
        Value::Bool(b) => Some((if *b { b"True".to_vec() } else { b"False".to_vec() }, "bool")),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some((i.to_string().into_bytes(), "int")),
            None => n.as_f64().map(|f| (f.to_string().into_bytes(), "float")),
        },
        _ => None,
    }
}

fn typed(plain: Vec<u8>, kind: &str) -> Option<Value> {
    let s = String::from_utf8(plain).ok()?;
    Some(match kind {
        "str" | "bytes" => Value::String(s),
        "int" | "int64" => Value::from(s.parse::<i64>().ok()?),
        "float" => Value::from(s.parse::<f64>().ok()?),
        "bool" => Value::Bool(s.eq_ignore_ascii_case("true")),
        _ => return None,
    })
}

/// What `walk` does at each leaf.
type LeafFn<'a> = dyn FnMut(&mut Value, &[String]) -> Result<(), SopsError> + 'a;

/// Visits every leaf in document order with its key path (list indices are not part of it).
fn walk(v: &mut Value, path: &mut Vec<String>, f: &mut LeafFn) -> Result<(), SopsError> {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                path.push(k.clone());
                walk(child, path, f)?;
                path.pop();
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|child| walk(child, path, f)),
        leaf => f(leaf, path),
    }
}

fn unencrypted(path: &[String]) -> bool {
    path.iter().any(|k| k.ends_with(UNENCRYPTED_SUFFIX))
}

fn last_modified() -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc().format(&fmt).unwrap_or_default()
}

fn wrap_key(key: &[u8; 32], recipient: &age::x25519::Recipient) -> Result<String, SopsError> {
    let fail = |e: &dyn std::fmt::Display| SopsError::Invalid(format!("age encryption failed: {e}"));
    let mut armored = Vec::new();
    let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient)).map_err(|e| fail(&e))?;
    let out = age::armor::ArmoredWriter::wrap_output(&mut armored, age::armor::Format::AsciiArmor).map_err(|e| fail(&e))?;
    let mut writer = encryptor.wrap_output(out).map_err(|e| fail(&e))?;
    writer.write_all(key).map_err(|e| fail(&e))?;
    writer.finish().and_then(|o| o.finish()).map_err(|e| fail(&e))?;
    String::from_utf8(armored).map_err(|e| fail(&e))
}

fn unwrap_key(enc: &str, identities: &[age::x25519::Identity]) -> Option<[u8; 32]> {
    let decryptor = age::Decryptor::new(age::armor::ArmoredReader::new(enc.as_bytes())).ok()?;
    let mut reader = decryptor.decrypt(identities.iter().map(|i| i as &dyn age::Identity)).ok()?;
    let mut key = Vec::new();
    reader.read_to_end(&mut key).ok()?;
    key.try_into().ok()
}

/// Encrypts every value of `plain` (keys ending in `_unencrypted` excepted) to `recipients`.
pub fn encrypt(plain: &Map<String, Value>, recipients: &[age::x25519::Recipient]) -> Result<Map<String, Value>, SopsError> {
    if recipients.is_empty() {
        return Err(SopsError::Invalid("at least one age recipient is needed".into()));
    }
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut doc = Value::Object(plain.clone());
    if let Value::Object(m) = &mut doc {
        m.remove("sops");
    }
    let mut mac = Sha512::new();
    walk(&mut doc, &mut Vec::new(), &mut |leaf, path| {
        let Some((bytes, kind)) = leaf_bytes(leaf) else { return Ok(()) };
        mac.update(&bytes);
        if !unencrypted(path) && !bytes.is_empty() {
            *leaf = Value::String(seal(&key, &bytes, kind, &aad_path(path))?);
        }
        Ok(())
    })?;
    let modified = last_modified();
    let mac_hex = hex::encode_upper(mac.finalize());
    let age_entries = recipients
        .iter()
        .map(|r| Ok(json!({"recipient": r.to_string(), "enc": wrap_key(&key, r)?})))
        .collect::<Result<Vec<_>, SopsError>>()?;
    let mut out = match doc {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    out.insert(
        "sops".into(),
        json!({
            "kms": null, "gcp_kms": null, "azure_kv": null, "hc_vault": null,
            "age": age_entries,
            "lastmodified": modified,
            "mac": seal(&key, mac_hex.as_bytes(), "str", &modified)?,
            "pgp": null,
            "unencrypted_suffix": UNENCRYPTED_SUFFIX,
            "version": SOPS_VERSION,
        }),
    );
    Ok(out)
}

/// The recipients a document is encrypted to.
pub fn recipients(doc: &Map<String, Value>) -> Vec<String> {
    doc.get("sops")
        .and_then(|s| s.get("age"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|e| e.get("recipient").and_then(Value::as_str).map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The document's data key, unwrapped with any matching identity.
pub fn data_key(doc: &Map<String, Value>, identities: &[age::x25519::Identity]) -> Result<[u8; 32], SopsError> {
    let meta = doc.get("sops").and_then(Value::as_object).ok_or(SopsError::NotSops)?;
    if identities.is_empty() {
        return Err(SopsError::NoIdentity);
    }
    meta.get("age")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("enc").and_then(Value::as_str))
        .find_map(|enc| unwrap_key(enc, identities))
        .ok_or_else(|| SopsError::WrongKey(recipients(doc)))
}

/// Decrypts a SOPS document with any matching identity and checks its MAC.
pub fn decrypt(doc: &Map<String, Value>, identities: &[age::x25519::Identity]) -> Result<Map<String, Value>, SopsError> {
    let meta = doc.get("sops").and_then(Value::as_object).ok_or(SopsError::NotSops)?;
    let key = data_key(doc, identities)?;
    let mut plain = Value::Object(doc.clone());
    if let Value::Object(m) = &mut plain {
        m.remove("sops");
    }
    let mut mac = Sha512::new();
    walk(&mut plain, &mut Vec::new(), &mut |leaf, path| {
        if let Value::String(s) = leaf
            && s.starts_with("ENC[")
            && !unencrypted(path)
        {
            let (bytes, kind) = open(&key, s, &aad_path(path)).ok_or_else(|| SopsError::Value(path.join(".")))?;
            mac.update(&bytes);
            *leaf = typed(bytes, &kind).ok_or_else(|| SopsError::Invalid(format!("unsupported value type '{kind}' at {}", path.join("."))))?;
            return Ok(());
        }
        if let Some((bytes, _)) = leaf_bytes(leaf) {
            mac.update(&bytes);
        }
        Ok(())
    })?;
    let modified = meta.get("lastmodified").and_then(Value::as_str).unwrap_or_default();
    let stored = meta.get("mac").and_then(Value::as_str).ok_or(SopsError::Mac)?;
    let (stored_mac, _) = open(&key, stored, modified).ok_or(SopsError::Mac)?;
    let computed = hex::encode_upper(mac.finalize());
    if !String::from_utf8_lossy(&stored_mac).eq_ignore_ascii_case(&computed) {
        return Err(SopsError::Mac);
    }
    match plain {
        Value::Object(m) => Ok(m),
        _ => Err(SopsError::Invalid("not an object".into())),
    }
}

/// Parses an age recipient (`age1…`).
pub fn recipient(s: &str) -> Result<age::x25519::Recipient, String> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|_| format!("'{s}' is not an age recipient (age1…)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> age::x25519::Identity {
        age::x25519::Identity::generate()
    }

    #[test]
    fn round_trip_with_nested_values_lists_and_unencrypted_keys() {
        let me = id();
        let plain = json!({"apiKey": "sk-live-123", "modelKeys": {"gpt": "k2"}, "list": ["a", 3, true, 1.5], "note_unencrypted": "visible", "empty": ""});
        let plain = plain.as_object().unwrap().clone();
        let enc = encrypt(&plain, &[me.to_public()]).unwrap();
        let text = serde_json::to_string(&enc).unwrap();
        assert!(!text.contains("sk-live-123") && text.contains("visible"));
        assert!(enc["apiKey"].as_str().unwrap().starts_with("ENC[AES256_GCM,data:"));
        assert!(enc["list"][1].as_str().unwrap().ends_with(",type:int]"));
        assert_eq!(decrypt(&enc, &[me]).unwrap(), plain);
    }

    #[test]
    fn wrong_key_tampered_value_and_mac_are_refused() {
        let me = id();
        let plain = json!({"apiKey": "sk-1", "other": "x"}).as_object().unwrap().clone();
        let enc = encrypt(&plain, &[me.to_public()]).unwrap();
        assert!(matches!(decrypt(&enc, &[id()]), Err(SopsError::WrongKey(r)) if r == vec![me.to_public().to_string()]));
        assert_eq!(decrypt(&enc, &[]), Err(SopsError::NoIdentity));

        // A value moved to another key fails its path-bound authentication.
        let mut moved = enc.clone();
        moved["other"] = enc["apiKey"].clone();
        assert_eq!(decrypt(&moved, std::slice::from_ref(&me)), Err(SopsError::Value("other".into())));
        // A value removed: everything left decrypts, but the MAC no longer matches.
        let mut dropped = enc.clone();
        dropped.remove("other");
        assert_eq!(decrypt(&dropped, std::slice::from_ref(&me)), Err(SopsError::Mac));
        // An unencrypted value edited.
        let plain = json!({"a": "1", "b_unencrypted": "x"}).as_object().unwrap().clone();
        let mut enc = encrypt(&plain, &[me.to_public()]).unwrap();
        enc["b_unencrypted"] = json!("y");
        assert_eq!(decrypt(&enc, &[me]), Err(SopsError::Mac));
    }

    #[test]
    fn every_recipient_can_decrypt() {
        let (a, b) = (id(), id());
        let plain = json!({"apiKey": "k"}).as_object().unwrap().clone();
        let enc = encrypt(&plain, &[a.to_public(), b.to_public()]).unwrap();
        assert_eq!(recipients(&enc).len(), 2);
        assert_eq!(decrypt(&enc, &[b]).unwrap(), plain);
        assert_eq!(decrypt(&enc, &[a]).unwrap(), plain);
    }
}
