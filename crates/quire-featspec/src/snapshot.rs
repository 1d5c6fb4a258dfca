//! The online feature snapshot: the book and user tables the ranking service holds in memory,
//! keyed and versioned, written by the same job (and code) that writes the training set.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::spec::{FeatureSpec, FeatureTables};

/// Reading or writing a snapshot failed; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("online feature snapshot: {0}")]
pub struct SnapshotError(String);

type Result<T> = std::result::Result<T, SnapshotError>;

/// Format version of the snapshot file.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The book and user tables as of one instant, with the spec of the code that computed them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineSnapshot {
    pub format: u32,
    /// Content version: xxh3-128 of the spec and tables, hex.
    pub version: String,
    /// The instant the tables describe, epoch ms UTC.
    pub as_of_ms: i64,
    pub spec: FeatureSpec,
    pub tables: FeatureTables,
}

impl OnlineSnapshot {
    /// A snapshot of `tables` as of `as_of_ms`; its version is the digest of its content.
    pub fn new(spec: FeatureSpec, tables: FeatureTables, as_of_ms: i64) -> Result<Self> {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        serde_json::to_writer(HashWriter(&mut hasher), &(&spec, &tables, as_of_ms))
            .map_err(|e| SnapshotError(format!("hashing the snapshot: {e}")))?;
        Ok(Self {
            format: SNAPSHOT_FORMAT,
            version: format!("{:032x}", hasher.digest128()),
            as_of_ms,
            spec,
            tables,
        })
    }

    /// Writes the snapshot as JSON to `path` (atomically: a temporary file, then a rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let io = |e: std::io::Error| SnapshotError(format!("writing {}: {e}", tmp.display()));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut w = BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
        serde_json::to_writer(&mut w, self)
            .map_err(|e| SnapshotError(format!("writing {}: {e}", tmp.display())))?;
        let f = w.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path)
            .map_err(|e| SnapshotError(format!("renaming {} into place: {e}", tmp.display())))
    }

    /// Reads a snapshot written by [`Self::write`], checking its format and that this code
    /// computes the features it was made for.
    pub fn read(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path)
            .map_err(|e| SnapshotError(format!("opening {}: {e}", path.display())))?;
        let snap: Self = serde_json::from_reader(BufReader::new(f))
            .map_err(|e| SnapshotError(format!("{}: {e}", path.display())))?;
        snap.checked(&path.display().to_string())
    }

    /// Reads a snapshot from the bytes of a file written by [`Self::write`] (an artifact
    /// already read and checksummed), with the checks of [`Self::read`]; `source` names the
    /// bytes in errors.
    pub fn from_slice(bytes: &[u8], source: &str) -> Result<Self> {
        let snap: Self =
            serde_json::from_slice(bytes).map_err(|e| SnapshotError(format!("{source}: {e}")))?;
        snap.checked(source)
    }

    /// The snapshot if this code reads its format and computes the features it was made for.
    fn checked(self, source: &str) -> Result<Self> {
        if self.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError(format!(
                "{source}: format {} (this code reads {SNAPSHOT_FORMAT})",
                self.format
            )));
        }
        self.spec
            .check_compatible()
            .map_err(|e| SnapshotError(format!("{source}: {e}")))?;
        Ok(self)
    }
}

struct HashWriter<'a>(&'a mut xxhash_rust::xxh3::Xxh3);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> OnlineSnapshot {
        OnlineSnapshot::new(
            FeatureSpec::new(vec!["Fantasy".into()]),
            FeatureTables::default(),
            7,
        )
        .unwrap()
    }

    #[test]
    fn from_slice_reads_the_json_write_writes() {
        let snap = snapshot();
        let bytes = serde_json::to_vec(&snap).unwrap();
        assert_eq!(
            OnlineSnapshot::from_slice(&bytes, "artifact x").unwrap(),
            snap
        );
    }

    #[test]
    fn from_slice_refuses_other_formats_specs_and_garbage_naming_the_source() {
        let mut snap = snapshot();
        snap.format = SNAPSHOT_FORMAT + 1;
        let err = OnlineSnapshot::from_slice(&serde_json::to_vec(&snap).unwrap(), "artifact x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("artifact x: format 2"), "{err}");

        let mut snap = snapshot();
        snap.spec.names.swap(0, 1);
        let err = OnlineSnapshot::from_slice(&serde_json::to_vec(&snap).unwrap(), "artifact x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("artifact x: the model's feature names differ"),
            "{err}"
        );

        let err = OnlineSnapshot::from_slice(b"{\"format\": 1", "artifact x").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("online feature snapshot: artifact x: "),
            "{err}"
        );
    }
}
