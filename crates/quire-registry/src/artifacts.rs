//! The local, content-addressed artifact store.
//!
//! An artifact lives at `<root>/sha256/<first two hex digits>/<remaining 62 hex digits>`; its
//! address is its digest, so storing the same bytes twice stores them once, and reading checks
//! the bytes against the digest the registry recorded.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// Where an artifact is and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// `file://` URI of the stored bytes.
    pub uri: String,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
}

/// An artifact under a name within a model version (`model.txt`, `model.onnx`, `features.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedArtifact {
    pub name: String,
    #[serde(flatten)]
    pub artifact: ArtifactRef,
}

/// A content-addressed store rooted at a local directory (`models/` by default; the caller
/// chooses).
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

impl ArtifactStore {
    /// Opens (and creates) the store at `root`; relative roots are made absolute against the
    /// current directory so the URIs it hands out stay valid.
    pub async fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let root = std::path::absolute(root).map_err(|e| Error::io(root, e))?;
        tokio::fs::create_dir_all(&root)
            .await
            .map_err(|e| Error::io(&root, e))?;
        // The real path (no `..`, no symlink): a URI holds it as the filesystem resolves it.
        let root = tokio::fs::canonicalize(&root)
            .await
            .map_err(|e| Error::io(&root, e))?;
        Ok(ArtifactStore { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores `bytes` and returns their reference.
    pub async fn put(&self, bytes: &[u8]) -> Result<ArtifactRef> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let path = self.path_for(&sha256)?;
        let size = i64::try_from(bytes.len()).map_err(|_| {
            Error::InvalidParameter(format!("artifact of {} bytes is too large", bytes.len()))
        })?;
        // The same content may be stored already: reuse it only if it still hashes right (a
        // file damaged on disk would otherwise be registered again for every new version).
        match tokio::fs::read(&path).await {
            Ok(stored) if hex::encode(Sha256::digest(&stored)) == sha256 => {
                return Ok(ArtifactRef {
                    uri: file_uri(&path),
                    sha256,
                    size,
                });
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "a stored artifact does not match its digest: writing it again")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        let dir = path.parent().unwrap_or(&self.root);
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Error::io(dir, e))?;
        // Write beside the target, flush it to disk, then rename and flush the directory:
        // readers never see a partial file, and once `put` returns (and a version that names
        // the artifact is committed) the bytes survive a crash too.
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            &sha256[2..],
            uuid::Uuid::new_v4().simple()
        ));
        let written = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(bytes).await?;
            file.sync_all().await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Error::io(&tmp, e));
        }
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| Error::io(&path, e))?;
        // The rename, and the `sha256/` and `sha256/xx/` directories if just made.
        for d in [dir, dir.parent().unwrap_or(&self.root), &self.root] {
            sync_dir(d).await?;
        }
        Ok(ArtifactRef {
            uri: file_uri(&path),
            sha256,
            size,
        })
    }

    /// Stores the file at `path`.
    pub async fn put_file(&self, path: impl AsRef<Path>) -> Result<ArtifactRef> {
        let path = path.as_ref();
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| Error::io(path, e))?;
        self.put(&bytes).await
    }

    /// Reads an artifact, refusing it when its bytes do not hash to the recorded digest. The
    /// hash is computed on a blocking thread (tens of milliseconds for a large artifact), not
    /// on the async worker: a server loading a version keeps answering meanwhile.
    ///
    /// A file missing where its URI says is read from this store's copy of the same digest, if
    /// it has one: the store was moved, or is mounted elsewhere on this machine (a team's
    /// shared store), and the digest check below makes any copy as good as the recorded one.
    pub async fn get(&self, artifact: &ArtifactRef) -> Result<Vec<u8>> {
        let recorded = local_path(&artifact.uri)?;
        let (bytes, read) = match tokio::fs::read(&recorded).await {
            Ok(bytes) => (bytes, None),
            // Neither here nor in this store: the error names where the registry says it is.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (bytes, own) = self
                    .own_copy(&artifact.sha256)
                    .await
                    .ok_or_else(|| Error::io(&recorded, e))?;
                tracing::warn!(
                    recorded = %recorded.display(),
                    read = %own.display(),
                    "an artifact is missing where the registry records it: read from this store's copy"
                );
                (bytes, Some(own))
            }
            Err(e) => return Err(Error::io(&recorded, e)),
        };
        let (bytes, actual) = tokio::task::spawn_blocking(move || {
            let digest = hex::encode(Sha256::digest(&bytes));
            (bytes, digest)
        })
        .await
        .map_err(|e| Error::io(&recorded, std::io::Error::other(e)))?;
        if !actual.eq_ignore_ascii_case(&artifact.sha256) {
            return Err(Error::ChecksumMismatch {
                // The file read: the store's copy, when that was read.
                artifact: read.map_or_else(|| artifact.uri.clone(), |own| file_uri(&own)),
                expected: artifact.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// This store's file of the digest `sha256` and its path, if it has one.
    async fn own_copy(&self, sha256: &str) -> Option<(Vec<u8>, PathBuf)> {
        let path = self.path_for(sha256).ok()?;
        Some((tokio::fs::read(&path).await.ok()?, path))
    }

    fn path_for(&self, sha256: &str) -> Result<PathBuf> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidParameter(format!(
                "{sha256:?} is not a sha256 hex digest"
            )));
        }
        Ok(self
            .root
            .join("sha256")
            .join(&sha256[..2])
            .join(&sha256[2..]))
    }
}

/// Flushes a directory's entries to disk. Filesystems that cannot (EINVAL: some network and
/// FUSE mounts) are left as they are: the file itself was flushed.
async fn sync_dir(dir: &Path) -> Result<()> {
    if cfg!(not(unix)) {
        return Ok(());
    }
    let synced = async { tokio::fs::File::open(dir).await?.sync_all().await }.await;
    match synced {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// The `file://` URI of an absolute path, percent-encoded (a space or `#` in the store's path
/// would otherwise make no URI, or one whose path stops at the `#`).
fn file_uri(path: &Path) -> String {
    url::Url::from_file_path(path)
        .map(String::from)
        .unwrap_or_else(|()| format!("file://{}", path.display()))
}

/// The local path of a `file://` URI, percent-decoded. A URI stored unencoded by an earlier
/// version is read as the path it spells when that is what exists (a `%41` in a directory
/// name), or when it is no URI with a plain path (a `#` or `?` in it).
pub fn local_path(uri: &str) -> Result<PathBuf> {
    let spelled = uri
        .strip_prefix("file://")
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from);
    if let Ok(u) = url::Url::parse(uri)
        && u.scheme() == "file"
        && u.fragment().is_none()
        && u.query().is_none()
        && let Ok(path) = u.to_file_path()
    {
        return Ok(match spelled {
            Some(old) if old != path && !path.exists() && old.exists() => old,
            _ => path,
        });
    }
    spelled.ok_or_else(|| {
        Error::InvalidParameter(format!(
            "artifact uri {uri:?} is not an absolute file:// uri"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_damaged_stored_copy_is_written_again_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).await.unwrap();
        let first = store.put(b"model bytes").await.unwrap();
        // A crash left the stored file truncated.
        let path = local_path(&first.uri).unwrap();
        std::fs::write(&path, b"model").unwrap();
        assert!(store.get(&first).await.is_err());
        let again = store.put(b"model bytes").await.unwrap();
        assert_eq!(again, first);
        assert_eq!(store.get(&again).await.unwrap(), b"model bytes");
    }

    #[tokio::test]
    async fn a_moved_store_reads_its_artifacts_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let first = ArtifactStore::open(dir.path().join("a")).await.unwrap();
        let stored = first.put(b"model bytes").await.unwrap();
        std::fs::rename(dir.path().join("a"), dir.path().join("b")).unwrap();
        // The URI still names `a/`; the store now at `b/` has the same digest.
        let moved = ArtifactStore::open(dir.path().join("b")).await.unwrap();
        assert_eq!(moved.get(&stored).await.unwrap(), b"model bytes");
        // A damaged copy is refused, naming the file read.
        let own = moved.path_for(&stored.sha256).unwrap();
        std::fs::write(&own, b"damaged").unwrap();
        match moved.get(&stored).await {
            Err(Error::ChecksumMismatch { artifact, .. }) => assert_eq!(artifact, file_uri(&own)),
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
        // A store without that digest: the error names the recorded path.
        let other = ArtifactStore::open(dir.path().join("c")).await.unwrap();
        let err = other.get(&stored).await.unwrap_err();
        let recorded = local_path(&stored.uri).unwrap();
        assert!(
            matches!(&err, Error::Io { path, .. } if *path == recorded),
            "{err:?}"
        );
    }

    #[test]
    fn local_path_requires_absolute_file_uri() {
        assert_eq!(local_path("file:///a/b").ok(), Some(PathBuf::from("/a/b")));
        // Encoded both ways, and read back as written by earlier versions (unencoded).
        let odd = Path::new("/tmp/ml #1/a?b/100%");
        let uri = file_uri(odd);
        assert_eq!(uri, "file:///tmp/ml%20%231/a%3Fb/100%25");
        assert_eq!(local_path(&uri).ok(), Some(odd.to_owned()));
        assert_eq!(
            local_path("file:///tmp/ml #1/a").ok(),
            Some(PathBuf::from("/tmp/ml #1/a"))
        );
        // An unencoded `%41` in an existing directory's name stays as written.
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("a%41");
        std::fs::create_dir(&old).unwrap();
        assert_eq!(
            local_path(&format!("file://{}", old.display())).ok(),
            Some(old.clone())
        );
        assert_eq!(local_path(&file_uri(&old)).ok(), Some(old));
        assert!(local_path("file://a/b").is_err());
        assert!(local_path("s3://bucket/a").is_err());
    }
}
