//! Uploads (streamed into the object store under the size limit) and downloads of the caller's
//! own files, and artifacts of the caller's threads.

use crate::{Caller, ChatService};
use bytes::Bytes;
use futures_util::Stream;
use tale_core::chat::{Artifact, FileOrigin, FileRecord};
use tale_core::id::{new_id, now_ms};
use tale_core::permission::Permission;
use tale_core::{Error, Result};
use tale_objects::ObjectError;

/// A file name as shown and downloaded: its last path segment, without control characters.
pub fn clean_file_name(raw: &str) -> Result<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let name: String = last.chars().filter(|c| !c.is_control()).collect::<String>().trim().chars().take(200).collect();
    if name.is_empty() || name == "." || name == ".." {
        return Err(Error::invalid("the file needs a name"));
    }
    Ok(name)
}

fn object_error(e: ObjectError) -> Error {
    match e {
        ObjectError::TooLarge { limit } => Error::PayloadTooLarge(format!("the file is larger than the upload limit of {limit} bytes")),
        ObjectError::Interrupted(m) => Error::invalid(format!("the upload broke off: {m}")),
        ObjectError::NotFound(_) => Error::NotFound("file"),
        ObjectError::Io { .. } => Error::Internal(e.to_string()),
    }
}

impl ChatService {
    /// Stores an upload for the caller (to attach to a message).
    pub async fn upload<S, E>(&self, c: &Caller<'_>, name: &str, media_type: &str, body: S) -> Result<FileRecord>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        c.grant.require(Permission::ChatUse)?;
        let name = clean_file_name(name)?;
        let media_type: String = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let media_type = if media_type.is_empty() { "application/octet-stream".to_owned() } else { media_type };
        let stored = self.objects.put_stream(body, self.config.max_upload_bytes).await.map_err(object_error)?;
        if stored.size == 0 {
            return Err(Error::invalid(format!("'{name}' is empty")));
        }
        let record = FileRecord {
            id: new_id(),
            org_id: c.grant.org_id.clone(),
            user_id: c.grant.user_id.clone(),
            thread_id: None,
            name,
            media_type,
            size: i64::try_from(stored.size).unwrap_or(i64::MAX),
            sha256: stored.sha256,
            origin: FileOrigin::Upload,
            created_at: now_ms(),
        };
        self.store().put_file(&record).await?;
        Ok(record)
    }

    /// One of the caller's files with its bytes.
    pub async fn download(&self, c: &Caller<'_>, file_id: &str) -> Result<(FileRecord, Vec<u8>)> {
        c.grant.require(Permission::ChatUse)?;
        let f = self.store().file(file_id).await?.filter(|f| f.org_id == c.grant.org_id && f.user_id == c.grant.user_id).ok_or(Error::NotFound("file"))?;
        let bytes = self.objects.read(&f.sha256).await.map_err(object_error)?;
        Ok((f, bytes))
    }

    /// An artifact (newest or a given version) of one of the caller's threads.
    pub async fn artifact(&self, c: &Caller<'_>, thread_id: &str, artifact_id: &str, version: Option<i64>) -> Result<Artifact> {
        self.own_thread(c, thread_id).await?;
        self.store().artifact(artifact_id, version).await?.filter(|a| a.thread_id == thread_id).ok_or(Error::NotFound("artifact"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn file_names_lose_their_paths() {
        assert_eq!(clean_file_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(clean_file_name("C:\\Users\\x\\report.pdf").unwrap(), "report.pdf");
        assert_eq!(clean_file_name("a\u{0}b.txt").unwrap(), "ab.txt");
        assert!(clean_file_name("../").is_err());
        assert!(clean_file_name("..").is_err());
    }
}
