//! The commit log: one JSON file per committed batch under `_manifest/`.
//!
//! A batch's data files are renamed into place first and its manifest file last, so a file
//! that no manifest lists was left by a crashed writer; [`Lake::recover`] removes such files.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{At, Error, Lake, Result, write_atomic};

/// What a committed file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Events,
    BadRows,
}

/// One committed data file, relative to the lake root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitFile {
    pub path: String,
    pub kind: FileKind,
    pub rows: u64,
}

/// Where a batch came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A JSON Lines file; `digest` is the xxh3-128 of its content (decompressed when gzip;
    /// before this version, of its bytes as stored), `bytes` its size on disk.
    File {
        path: String,
        digest: String,
        bytes: u64,
        /// The keys of the bad rows this batch stored (a hash of the file's canonical path,
        /// the line's number and its bytes): a file ingested again after it grew does not
        /// store the bad rows of its earlier lines twice.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        bad_row_keys: Vec<String>,
    },
    /// Events that arrived by another way (HTTP intake, event bus), named by the caller.
    Stream {
        name: String,
        /// The keys (bus entries) whose bad rows this batch stored: an entry delivered again
        /// (a crash between the commit and the acknowledgement) does not store them twice.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        bad_row_keys: Vec<String>,
    },
}

impl Source {
    /// A stream source named `name` (its bad-row keys are filled in by the commit).
    pub fn stream(name: impl Into<String>) -> Self {
        Source::Stream {
            name: name.into(),
            bad_row_keys: Vec::new(),
        }
    }
}

/// One committed batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Commit {
    pub seq: u64,
    pub batch_id: String,
    pub committed_at: DateTime<Utc>,
    pub source: Source,
    pub counts: crate::IngestReport,
    pub files: Vec<CommitFile>,
}

impl Lake {
    /// Every committed batch, in commit order.
    pub fn commits(&self) -> Result<Vec<Commit>> {
        self.commits_after(0)
    }

    /// The committed batches with a sequence number above `seq`, in commit order (only their
    /// files are read: the sequence number leads each file's name).
    pub fn commits_after(&self, seq: u64) -> Result<Vec<Commit>> {
        let dir = self.manifest_dir();
        let mut paths: Vec<PathBuf> = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()
                .at(|| format!("listing {}", dir.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).at(|| format!("listing {}", dir.display())),
        };
        paths.retain(|p| {
            p.extension().is_some_and(|e| e == "json")
                // A name whose prefix is not a number is read, and fails as not a commit.
                && name_seq(p).is_none_or(|s| s > seq)
        });
        paths.sort();
        paths.iter().map(|p| read_commit(p)).collect()
    }

    /// Whether a file with this digest was already committed in full.
    pub fn has_source_digest(&self, digest: &str) -> Result<bool> {
        Ok(self
            .commits()?
            .iter()
            .any(|c| matches!(&c.source, Source::File { digest: d, .. } if d == digest)))
    }

    pub(crate) fn write_commit(&self, commit: &Commit) -> Result<()> {
        let path = self
            .manifest_dir()
            .join(format!("{:020}-{}.json", commit.seq, commit.batch_id));
        let bytes = serde_json::to_vec_pretty(commit).map_err(|e| Error::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(&path, &bytes)
    }

    /// Removes what a crashed writer left: `*.tmp` files, and data files no commit lists.
    /// Called with the writer lock held. Returns how many files were removed.
    pub(crate) fn recover(&self, commits: &[Commit]) -> Result<usize> {
        let committed: HashSet<PathBuf> = commits
            .iter()
            .flat_map(|c| c.files.iter().map(|f| self.root.join(&f.path)))
            .collect();
        let mut removed = 0;
        for dir in [self.events_dir(), self.badrows_dir(), self.manifest_dir()] {
            let mut files = Vec::new();
            walk(&dir, &mut files)?;
            for f in files {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let orphan = name.ends_with(".tmp")
                    || (name.ends_with(".parquet") && !committed.contains(&f));
                if orphan {
                    fs::remove_file(&f).at(|| format!("removing {}", f.display()))?;
                    tracing::warn!(file = %f.display(), "removed a file left by an interrupted ingest");
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// The sequence number a commit file's name starts with (`<seq>-<batch>.json`).
fn name_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.split_once('-')?.0.parse().ok()
}

fn read_commit(path: &Path) -> Result<Commit> {
    let bytes = fs::read(path).at(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
        path: path.to_owned(),
        message: format!("not a valid commit file ({e})"),
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at(|| format!("listing {}", dir.display())),
    };
    for entry in rd {
        let entry = entry.at(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        if entry
            .file_type()
            .at(|| format!("reading {}", path.display()))?
            .is_dir()
        {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}
