//! Streaming ingest: JSON Lines (plain or gzip) → validated, deduplicated, hive-partitioned
//! Parquet, committed atomically.
//!
//! Memory is bounded by [`IngestOptions::flush_rows`] buffered events plus the deduplication
//! index (16 bytes per event id in the lake), whatever the size of the input file.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use polars::prelude::*;
use quire_events::{Event, parse_line};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use crate::badrows::{self, BadRow};
use crate::manifest::{Commit, CommitFile, FileKind, Source};
use crate::{At, IdSet, Lake, Result, events_frame, sync_dir, tmp_path, write_parquet};

/// Tuning of an ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Valid events buffered before they are written out as Parquet.
    pub flush_rows: usize,
    /// Lines parsed together (in parallel) per step.
    pub chunk_lines: usize,
    #[cfg(test)]
    pub(crate) crash_before_manifest: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            flush_rows: 500_000,
            chunk_lines: 65_536,
            #[cfg(test)]
            crash_before_manifest: false,
        }
    }
}

/// Counts of one ingest call (`quire ingest --json`, cli.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Non-empty lines (or events) read.
    pub lines: u64,
    /// Valid events, test events and duplicates included.
    pub valid: u64,
    pub invalid: u64,
    /// Valid events whose `event_id` was already in the lake or earlier in the input.
    pub duplicates: u64,
    /// Valid test events (`is_test: true`).
    pub test: u64,
}

/// What happened to one valid event pushed into a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
}

/// A long-lived writer of the lake: it keeps the lake's event-id index (and where the commit
/// log stood) from one batch to the next, so a batch costs what it writes, not what the lake
/// holds. It holds the writer lock only while a [`Batch`] is open; commits other writers made
/// meanwhile (a `quire ingest`, another process) are read into the index when the next batch
/// begins, so `event_id` stays unique across the lake whoever writes.
pub struct Writer {
    lake: Lake,
    /// xxh3-128 of every committed event id (collisions are out of reach at any lake size).
    seen: IdSet,
    /// The bad-row keys of committed stream batches (see [`Batch::push_invalid_keyed`]).
    bad_row_keys: HashSet<String>,
    /// The last commit read into `seen`.
    last_seq: u64,
    /// `false` after a batch that did not commit: its files are removed before the next one.
    clean: bool,
    /// Whether a batch writes its files in parallel (see [`Writer::set_parallel`]).
    parallel: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("lake", &self.lake.root())
            .field("indexed_ids", &self.seen.len())
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Opens a writer: removes what an interrupted writer left and loads the id index (under
    /// the writer lock, released on return).
    pub fn open(lake: &Lake) -> Result<Self> {
        let _lock = lake.lock()?;
        let commits = lake.commits()?;
        lake.recover(&commits)?;
        let mut seen = IdSet::new();
        lake.add_ids(&commits, &mut seen)?;
        let mut bad_row_keys = HashSet::new();
        add_bad_row_keys(&commits, &mut bad_row_keys);
        Ok(Self {
            lake: lake.clone(),
            seen,
            bad_row_keys,
            last_seq: commits.last().map_or(0, |c| c.seq),
            clean: true,
            parallel: true,
        })
    }

    /// Whether a batch writes its files in parallel, its partitions on a thread per core and each
    /// file's columns on Polars' (the default: an ingest job wants the whole machine), or one
    /// after another on the committing thread: for a writer beside latency-critical work,
    /// which would otherwise wait in the pools' queues behind the file encoding. (Reading other
    /// writers' commits into the index still uses a thread per core, and building frames
    /// Polars' pool unless the caller keeps it off, as the live archiver does.)
    pub fn set_parallel(&mut self, parallel: bool) {
        self.parallel = parallel;
    }

    /// Event ids in the index (every event id committed to the lake as of the last batch).
    pub fn indexed_ids(&self) -> usize {
        self.seen.len()
    }

    /// Takes the writer lock and begins a batch; the lock is held until the batch is committed
    /// or dropped. Reads the commits other writers made since this writer's last batch.
    pub fn batch(&mut self, flush_rows: usize) -> Result<Batch<'_>> {
        let lock = self.lake.lock()?;
        let newer = if self.clean {
            self.lake.commits_after(self.last_seq)?
        } else {
            let commits = self.lake.commits()?;
            self.lake.recover(&commits)?;
            commits
                .into_iter()
                .filter(|c| c.seq > self.last_seq)
                .collect()
        };
        self.lake.add_ids(&newer, &mut self.seen)?;
        add_bad_row_keys(&newer, &mut self.bad_row_keys);
        if let Some(c) = newer.last() {
            self.last_seq = self.last_seq.max(c.seq);
        }
        // Cleared by a successful commit.
        self.clean = false;
        Ok(Batch {
            next_seq: self.last_seq + 1,
            writer: self,
            _lock: lock,
            batch_id: format!(
                "{}-{}",
                Utc::now().format("%Y%m%dT%H%M%S"),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            fresh: HashSet::new(),
            events: Vec::new(),
            bad: Vec::new(),
            bad_row_keys: Vec::new(),
            written: Vec::new(),
            counts: IngestReport::default(),
            flush_rows: flush_rows.max(1),
        })
    }
}

/// One batch of a [`Writer`]: holds the lake lock from [`Writer::batch`] to [`Batch::commit`].
/// Dropped without a commit, it leaves nothing committed and the writer's index unchanged.
pub struct Batch<'w> {
    writer: &'w mut Writer,
    _lock: File,
    batch_id: String,
    next_seq: u64,
    /// Ids of this batch's events (added to the writer's index when it commits).
    fresh: HashSet<u128>,
    events: Vec<Event>,
    bad: Vec<BadRow>,
    /// Keys of this batch's keyed bad rows (recorded in its commit).
    bad_row_keys: Vec<String>,
    written: Vec<(PathBuf, CommitFile)>,
    counts: IngestReport,
    flush_rows: usize,
}

impl Batch<'_> {
    /// Adds one valid event; a repeat of an id already in the lake or batch is a duplicate.
    pub fn push_event(&mut self, event: Event) -> Result<Outcome> {
        self.counts.lines += 1;
        self.counts.valid += 1;
        if event.is_test {
            self.counts.test += 1;
        }
        let id = id_hash(&event.event_id);
        if self.writer.seen.contains(id) || !self.fresh.insert(id) {
            self.counts.duplicates += 1;
            return Ok(Outcome::Duplicate);
        }
        self.events.push(event);
        if self.events.len() >= self.flush_rows {
            self.flush_events()?;
        }
        Ok(Outcome::Accepted)
    }

    /// Adds one invalid line to the bad-rows store.
    pub fn push_invalid(&mut self, row: BadRow) -> Result<()> {
        self.counts.lines += 1;
        self.counts.invalid += 1;
        self.bad.push(row);
        if self.bad.len() >= self.flush_rows {
            self.flush_bad()?;
        }
        Ok(())
    }

    /// Adds the bad row of a delivery named by `key` (a bus entry, a file's line), unless a
    /// committed batch or this one already stored the bad row of that key: a delivery received
    /// again stores it once. Returns whether it was added. The keys are recorded in the commit.
    pub fn push_invalid_keyed(&mut self, key: String, row: BadRow) -> Result<bool> {
        if self.writer.bad_row_keys.contains(&key) || self.bad_row_keys.contains(&key) {
            return Ok(false);
        }
        self.bad_row_keys.push(key);
        self.push_invalid(row)?;
        Ok(true)
    }

    /// The counts so far.
    pub fn counts(&self) -> IngestReport {
        self.counts
    }

    fn data_file(&mut self, dir: PathBuf, kind: FileKind, rows: u64) -> Result<PathBuf> {
        fs::create_dir_all(&dir).at(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!(
            "part-{}-{:05}.parquet",
            self.batch_id,
            self.written.len()
        ));
        let rel = path
            .strip_prefix(self.writer.lake.root())
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        self.written.push((
            path.clone(),
            CommitFile {
                path: rel,
                kind,
                rows,
            },
        ));
        Ok(tmp_path(&path))
    }

    fn flush_events(&mut self) -> Result<()> {
        if self.events.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.events);
        let mut parts: BTreeMap<(NaiveDate, u32), Vec<&Event>> = BTreeMap::new();
        for e in &events {
            parts
                .entry(partition_of(e.event_timestamp))
                .or_default()
                .push(e);
        }
        let now = Utc::now();
        let mut jobs = Vec::with_capacity(parts.len());
        for ((date, hour), part) in parts {
            let dir = self
                .writer
                .lake
                .events_dir()
                .join(format!("date={date}"))
                .join(format!("hour={hour:02}"));
            let tmp = self.data_file(dir, FileKind::Events, part.len() as u64)?;
            jobs.push((date, hour, part, tmp));
        }
        let parallel = self.writer.parallel;
        let write = |(date, hour, part, tmp): (NaiveDate, u32, Vec<&Event>, PathBuf)| {
            let mut df = events_frame(&part, now)
                .at(|| format!("building the events of {date} hour {hour:02}"))?;
            write_parquet(&mut df, &tmp, parallel)
        };
        if parallel {
            // Partitions are written in parallel: with many small partitions the time goes to
            // building frames, compressing and fsyncing each file, not to one big write.
            on_threads(jobs, write).map(drop)
        } else {
            jobs.into_iter().try_for_each(write)
        }
    }

    fn flush_bad(&mut self) -> Result<()> {
        if self.bad.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.bad);
        let tmp = self.data_file(
            self.writer.lake.badrows_dir(),
            FileKind::BadRows,
            rows.len() as u64,
        )?;
        let mut df = badrows::frame(&rows).at(|| "building the bad rows".to_owned())?;
        write_parquet(&mut df, &tmp, self.writer.parallel)
    }

    /// Writes what is buffered, renames every file into place, then writes the manifest.
    /// `keep_bad_rows = false` drops this batch's bad rows (they were committed before).
    fn finish(
        mut self,
        mut source: Source,
        keep_bad_rows: bool,
        _crash: bool,
    ) -> Result<IngestReport> {
        let keys = if keep_bad_rows {
            std::mem::take(&mut self.bad_row_keys)
        } else {
            Vec::new()
        };
        match &mut source {
            Source::Stream { bad_row_keys, .. } | Source::File { bad_row_keys, .. } => {
                bad_row_keys.extend(keys.iter().cloned());
            }
        }
        self.flush_events()?;
        if keep_bad_rows {
            self.flush_bad()?;
        } else {
            self.bad.clear();
        }
        let mut files = Vec::with_capacity(self.written.len());
        let mut dirs = std::collections::BTreeSet::new();
        for (path, file) in std::mem::take(&mut self.written) {
            let tmp = tmp_path(&path);
            if file.kind == FileKind::BadRows && !keep_bad_rows {
                fs::remove_file(&tmp).at(|| format!("removing {}", tmp.display()))?;
                continue;
            }
            fs::rename(&tmp, &path).at(|| format!("renaming {} into place", tmp.display()))?;
            // The hour's directory, and the date's and the table's if this batch made them.
            let root = self.writer.lake.root();
            dirs.extend(
                path.ancestors()
                    .skip(1)
                    .take(3)
                    .filter(|d| d.starts_with(root))
                    .map(Path::to_path_buf),
            );
            files.push(file);
        }
        // The files' renames reach the disk before the manifest that commits them.
        for dir in &dirs {
            sync_dir(dir)?;
        }
        #[cfg(test)]
        if _crash {
            return Err(crate::Error::Io {
                context: "simulated crash before the manifest".to_owned(),
                source: std::io::Error::other("crash"),
            });
        }
        if !files.is_empty() {
            self.writer.lake.write_commit(&Commit {
                seq: self.next_seq,
                batch_id: self.batch_id.clone(),
                committed_at: Utc::now(),
                source,
                counts: self.counts,
                files,
            })?;
            self.writer.last_seq = self.next_seq;
        }
        let fresh = std::mem::take(&mut self.fresh);
        self.writer.seen.extend(fresh);
        self.writer.bad_row_keys.extend(keys);
        self.writer.clean = true;
        Ok(self.counts)
    }

    /// Commits the batch for a stream source (HTTP intake, event bus).
    pub fn commit(self, source: Source) -> Result<IngestReport> {
        self.finish(source, true, false)
    }
}

/// Adds the bad-row keys recorded in `commits` to `keys`.
fn add_bad_row_keys(commits: &[Commit], keys: &mut HashSet<String>) {
    for c in commits {
        match &c.source {
            Source::Stream { bad_row_keys, .. } | Source::File { bad_row_keys, .. } => {
                keys.extend(bad_row_keys.iter().cloned());
            }
        }
    }
}

/// The key of the bad row of line `line_number` of file `source` (its canonical path; see
/// [`Source::File`]).
fn file_bad_row_key(source: &str, line_number: u64, line: &[u8]) -> String {
    let mut h = Xxh3::new();
    h.update(source.as_bytes());
    h.update(&[0]);
    h.update(&line_number.to_le_bytes());
    h.update(line);
    format!("file:{:032x}", h.digest128())
}

fn id_hash(id: &str) -> u128 {
    xxh3_128(id.as_bytes())
}

impl Lake {
    /// Adds the event ids of `commits`' event files to `seen`, hashed.
    fn add_ids(&self, commits: &[Commit], seen: &mut IdSet) -> Result<()> {
        let files: Vec<PathBuf> = commits
            .iter()
            .flat_map(|c| c.files.iter())
            .filter(|f| f.kind == FileKind::Events)
            .map(|f| self.root.join(&f.path))
            .collect();
        let per_file: Vec<Vec<u128>> = on_threads(files, |path| {
            let df = LazyFrame::scan_parquet(
                PlRefPath::try_from_path(&path).at(|| path.display().to_string())?,
                ScanArgsParquet {
                    hive_options: HiveOptions::new_disabled(),
                    ..Default::default()
                },
            )
            .and_then(|lf| lf.select([col("event_id")]).collect())
            .at(|| format!("reading event ids of {}", path.display()))?;
            let ids = df
                .column("event_id")
                .and_then(|c| c.str().cloned())
                .at(|| format!("reading event ids of {}", path.display()))?;
            Ok(ids.iter().flatten().map(id_hash).collect())
        })?;
        seen.reserve(per_file.iter().map(Vec::len).sum());
        for ids in per_file {
            seen.extend(ids);
        }
        Ok(())
    }

    /// Ingests one JSON Lines file (gzip detected by its magic bytes), streaming.
    /// `progress` is called with the bytes of the file read so far.
    pub fn ingest_file(
        &self,
        path: &Path,
        opts: &IngestOptions,
        progress: &dyn Fn(u64),
    ) -> Result<IngestReport> {
        let mut writer = Writer::open(self)?;
        let mut batch = writer.batch(opts.flush_rows)?;
        let source_name = path.display().to_string();
        // The bad-row keys name the file however its path was typed (`day.jsonl`,
        // `./day.jsonl`, an absolute path).
        let key_name = std::fs::canonicalize(path)
            .map_or_else(|_| source_name.clone(), |p| p.display().to_string());
        let (mut reader, hasher) = open_input(path)?;
        let mut line_no: u64 = 0;
        let mut buf = Vec::new();
        loop {
            let mut chunk: Vec<(u64, Vec<u8>)> = Vec::with_capacity(opts.chunk_lines);
            while chunk.len() < opts.chunk_lines {
                buf.clear();
                let n = reader
                    .read_until(b'\n', &mut buf)
                    .at(|| format!("reading {source_name} at line {}", line_no + 1))?;
                if n == 0 {
                    break;
                }
                line_no += 1;
                // A byte order mark opens the file, not its first event.
                if line_no == 1 && buf.starts_with(b"\xef\xbb\xbf") {
                    buf.drain(..3);
                }
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                chunk.push((line_no, std::mem::take(&mut buf)));
            }
            if chunk.is_empty() {
                break;
            }
            let parsed: Vec<(u64, Vec<u8>, std::result::Result<Event, String>)> = chunk
                .into_par_iter()
                .map(|(no, bytes)| {
                    let r = match std::str::from_utf8(&bytes) {
                        Ok(text) => parse_line(text.trim_end()).map_err(|e| e.reason()),
                        Err(e) => Err(format!("line: not valid UTF-8 ({e})")),
                    };
                    (no, bytes, r)
                })
                .collect();
            let now = Utc::now();
            for (no, bytes, r) in parsed {
                match r {
                    Ok(event) => {
                        batch.push_event(event)?;
                    }
                    Err(reason) => {
                        let line = line_content(&bytes);
                        let stored = batch.push_invalid_keyed(
                            file_bad_row_key(&key_name, no, line),
                            BadRow {
                                line: String::from_utf8_lossy(line).into_owned(),
                                source: source_name.clone(),
                                line_number: no as i64,
                                reason,
                                rejected_at: now,
                            },
                        )?;
                        if !stored {
                            // Stored by an earlier ingest of the file: read and invalid all
                            // the same, as a duplicate event is still valid.
                            batch.counts.lines += 1;
                            batch.counts.invalid += 1;
                        }
                    }
                }
            }
            progress(hasher.borrow().1);
        }
        let (digest, bytes) = {
            let h = hasher.borrow();
            (digest_hex(&h.0), h.1)
        };
        // A file committed before has its bad rows stored already: storing them again would
        // make a re-ingest change the lake.
        let keep_bad = !self.has_source_digest(&digest)?;
        let source = Source::File {
            path: source_name,
            digest,
            bytes,
            bad_row_keys: Vec::new(),
        };
        #[cfg(test)]
        let crash = opts.crash_before_manifest;
        #[cfg(not(test))]
        let crash = false;
        batch.finish(source, keep_bad, crash)
    }
}

fn digest_hex(h: &Xxh3) -> String {
    format!("{:032x}", h.digest128())
}

/// The digest (xxh3-128, hex) of a file's content (decompressed when gzip) and its size on
/// disk, as an ingest records its source: lets a scheduler tell whether a file was already
/// ingested without ingesting it.
pub fn file_digest(path: &Path) -> Result<(String, u64)> {
    let (mut reader, state) = open_input(path)?;
    std::io::copy(&mut reader, &mut std::io::sink())
        .at(|| format!("reading {}", path.display()))?;
    let s = state.borrow();
    Ok((digest_hex(&s.0), s.1))
}

/// The content's hash and the bytes read from the file so far.
type HashState = Rc<RefCell<(Xxh3, u64)>>;

/// Taps the bytes read through it: hashes them (the content) and/or counts them (the file's
/// bytes, for progress and the recorded size).
struct Tap<R> {
    inner: R,
    state: HashState,
    hash: bool,
    count: bool,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut s = self.state.borrow_mut();
        if self.hash {
            s.0.update(&buf[..n]);
        }
        if self.count {
            s.1 += n as u64;
        }
        Ok(n)
    }
}

fn open_input(path: &Path) -> Result<(Box<dyn BufRead>, HashState)> {
    let mut file = File::open(path).at(|| format!("opening {}", path.display()))?;
    let mut magic = [0u8; 2];
    let got = file
        .read(&mut magic)
        .and_then(|n| file.rewind().map(|()| n))
        .at(|| format!("reading {}", path.display()))?;
    let state: HashState = Rc::new(RefCell::new((Xxh3::new(), 0)));
    let gzip = got == 2 && magic == [0x1f, 0x8b];
    // The digest is of the content: the same lines gzipped are the same source, so their
    // bad rows are not stored again.
    let raw = Tap {
        inner: file,
        state: state.clone(),
        hash: !gzip,
        count: true,
    };
    let reader: Box<dyn BufRead> = if gzip {
        let content = Tap {
            inner: flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, raw)),
            state: state.clone(),
            hash: true,
            count: false,
        };
        Box::new(BufReader::with_capacity(1 << 20, content))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, raw))
    };
    Ok((reader, state))
}

/// Runs `work` on every job, on one scoped thread per core, and gives the results in the
/// jobs' order; the first error or panic stops the threads taking more jobs.
///
/// Not rayon's pool, for work that calls Polars: a rayon worker waiting for Polars' own pool
/// runs other jobs of its pool on its stack meanwhile, so the stack grows with the number of
/// jobs (one per hour partition: a 14-day file overflowed it). A plain thread just waits.
fn on_threads<J: Send, T: Send>(
    jobs: Vec<J>,
    work: impl Fn(J) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(jobs.len());
    let queue = Mutex::new(jobs.into_iter().enumerate());
    let failed = AtomicBool::new(false);
    let take = || {
        if failed.load(Ordering::Relaxed) {
            return None;
        }
        queue.lock().unwrap_or_else(PoisonError::into_inner).next()
    };
    let mut done: Vec<(usize, T)> = Vec::new();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<Vec<(usize, T)>> {
                    // A panicking job stops the others too (the panic is raised at the join).
                    let _stop_on_panic = StopOnPanic(&failed);
                    let mut out = Vec::new();
                    while let Some((i, job)) = take() {
                        match work(job) {
                            Ok(t) => out.push((i, t)),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut first_error = None;
        for worker in workers {
            match worker.join() {
                Ok(Ok(out)) => done.extend(out),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        first_error.map_or(Ok(()), Err)
    })?;
    done.sort_unstable_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, t)| t).collect())
}

/// Sets its flag when dropped by a panic.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// A line without its terminator (`\n` or `\r\n`): the original line a bad row keeps.
fn line_content(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

/// The UTC (date, hour) partition of a timestamp.
fn partition_of(t: DateTime<Utc>) -> (NaiveDate, u32) {
    (t.date_naive(), t.hour())
}
