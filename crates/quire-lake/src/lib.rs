//! The lake and the warehouse's storage: raw events as immutable, hive-partitioned Parquet,
//! a commit log (`_manifest/`), the bad-rows store and the dimension tables.
//!
//! The layout and every schema are documented in `docs/lake.md`. The invariants:
//! - only files listed in `_manifest/` are committed, and Quire reads only committed files;
//! - `event_id` is unique across the lake (a repeat is counted as a duplicate and dropped);
//! - one writer at a time (an exclusive lock on `<lake>/_lock`), so concurrent ingests
//!   serialize instead of racing on the deduplication index.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use polars::prelude::*;

mod badrows;
mod dims;
mod frame;
mod idset;
mod ingest;
mod manifest;

pub use badrows::BadRow;
pub use dims::{CheckedDim, DimLoadReport, DimTable};
pub use frame::{events_frame, events_schema};
pub use idset::IdSet;
pub use ingest::{Batch, IngestOptions, IngestReport, Outcome, Writer, file_digest};
pub use manifest::{Commit, CommitFile, FileKind, Source};

/// Errors of the lake.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Polars {
        context: String,
        #[source]
        source: PolarsError,
    },
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Dim { path: PathBuf, message: String },
    #[error("no lake at {path} (`quire ingest --lake {path}` makes one)")]
    NoLake { path: String },
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) trait At<T> {
    fn at(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> At<T> for std::result::Result<T, io::Error> {
    fn at(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}

impl<T> At<T> for PolarsResult<T> {
    fn at(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Polars {
            context: what(),
            source,
        })
    }
}

/// A lake rooted at one directory.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

impl Lake {
    /// Opens (creating when needed) the lake at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let lake = Self { root: root.into() };
        for dir in [
            lake.events_dir(),
            lake.badrows_dir(),
            lake.manifest_dir(),
            lake.warehouse_dir().join("dims"),
        ] {
            fs::create_dir_all(&dir).at(|| format!("creating {}", dir.display()))?;
        }
        Ok(lake)
    }

    /// Opens the lake at `root` to read it: an error naming the directory when no lake is
    /// there, so a mistyped path is not made into an empty lake that answers with nothing.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Self> {
        let lake = Self { root: root.into() };
        if !lake.manifest_dir().is_dir() {
            return Err(Error::NoLake {
                path: lake.root.display().to_string(),
            });
        }
        Ok(lake)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn events_dir(&self) -> PathBuf {
        self.root.join("events")
    }

    pub fn badrows_dir(&self) -> PathBuf {
        self.root.join("badrows")
    }

    pub fn manifest_dir(&self) -> PathBuf {
        self.root.join("_manifest")
    }

    /// Where the warehouse's tables live (`dims/`, `staging/`, `facts/`, `aggregates/`).
    pub fn warehouse_dir(&self) -> PathBuf {
        self.root.join("warehouse")
    }

    /// Takes the lake's writer lock; it is released when the returned file is dropped.
    pub(crate) fn lock(&self) -> Result<File> {
        let path = self.root.join("_lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(|| format!("opening {}", path.display()))?;
        file.lock().at(|| format!("locking {}", path.display()))?;
        Ok(file)
    }

    /// A lazy scan of every committed event file (empty, with the lake schema, when there is none).
    pub fn scan_events(&self) -> Result<LazyFrame> {
        let files = self.committed_files(FileKind::Events)?;
        scan_files(files, events_schema())
    }

    /// A lazy scan of every committed bad row.
    pub fn scan_bad_rows(&self) -> Result<LazyFrame> {
        let files = self.committed_files(FileKind::BadRows)?;
        scan_files(files, badrows::schema())
    }

    /// Absolute paths of the committed files of one kind, in commit order.
    pub fn committed_files(&self, kind: FileKind) -> Result<Vec<PathBuf>> {
        Ok(self
            .commits()?
            .iter()
            .flat_map(|c| c.files.iter())
            .filter(|f| f.kind == kind)
            .map(|f| self.root.join(&f.path))
            .collect())
    }
}

fn scan_files(files: Vec<PathBuf>, schema: Schema) -> Result<LazyFrame> {
    if files.is_empty() {
        return Ok(DataFrame::empty_with_schema(&schema).lazy());
    }
    let paths = files
        .iter()
        .map(|p| PlRefPath::try_from_path(p))
        .collect::<PolarsResult<Vec<_>>>()
        .at(|| "building the list of lake files".to_owned())?;
    // Hive keys stay in the paths: the frame has exactly the files' schema, also when empty.
    let args = ScanArgsParquet {
        schema: Some(Arc::new(schema)),
        hive_options: HiveOptions::new_disabled(),
        ..Default::default()
    };
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)
        .at(|| "scanning the lake".to_owned())
}

/// Writes `bytes` to `path` atomically and durably: a temporary file beside it, fsync,
/// rename, fsync of the directory (so that the rename itself survives a power loss).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    {
        use std::io::Write;
        let mut f = File::create(&tmp).at(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .at(|| format!("writing {}", tmp.display()))?;
    }
    fs::rename(&tmp, path).at(|| format!("renaming {} into place", tmp.display()))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Flushes a directory's entries (renames, new files and subdirectories) to disk. A
/// filesystem that cannot (EINVAL: some network and FUSE mounts) is left as it is.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e)
            if !matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) =>
        {
            Err(e).at(|| format!("syncing directory {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Writes a frame as Parquet to `path` atomically (temporary file, fsync, rename).
pub fn write_parquet_atomic(df: &mut DataFrame, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).at(|| format!("creating {}", dir.display()))?;
    }
    let tmp = tmp_path(path);
    write_parquet(df, &tmp, true)?;
    fs::rename(&tmp, path).at(|| format!("renaming {} into place", tmp.display()))
}

/// Writes a frame as zstd Parquet and fsyncs it; `parallel`: its columns are encoded on
/// Polars' thread pool, else on this thread.
pub(crate) fn write_parquet(df: &mut DataFrame, path: &Path, parallel: bool) -> Result<()> {
    let file = File::create(path).at(|| format!("creating {}", path.display()))?;
    ParquetWriter::new(&file)
        .with_compression(ParquetCompression::Zstd(None))
        .set_parallel(parallel)
        .finish(df)
        .at(|| format!("writing {}", path.display()))?;
    file.sync_all().at(|| format!("syncing {}", path.display()))
}

/// The in-progress name of a file: `<name>.tmp`, which no `*.parquet` glob matches.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests;
