use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::*;

fn event(id: &str, ts: &str, ty: &str, extra: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","event_type":"{ty}","event_timestamp":"{ts}","user_id":"usr_1","device":"mobile"{extra}}}"#
    )
}

fn sample_lines() -> Vec<String> {
    vec![
        event(
            "e1",
            "2025-10-01T07:00:00Z",
            "page_view",
            r#","page":"home""#,
        ),
        event("e2", "2025-10-01T09:30:00+02:00", "checkout_started", ""),
        String::new(),
        "not json at all".to_owned(),
        event(
            "e3",
            "2025-10-01T08:15:00Z",
            "order_placed",
            r#","order_id":"o1","items":[{"book_id":"bk_1","quantity":2,"unit_price":5.0},{"book_id":"bk_2","quantity":1,"unit_price":3.5}],"total_price":13.5,"promo_code":"FALL""#,
        ),
        event(
            "e1",
            "2025-10-01T07:00:00Z",
            "page_view",
            r#","page":"home""#,
        ),
        event(
            "e4",
            "2025-10-02T23:59:59.999Z",
            "search_performed",
            r#","search_id":"s1","query":"dragons","results_count":2,"ranker":"bm25","results":["bk_1","bk_2"],"result_scores":[2.0,1.0],"is_test":true"#,
        ),
        event(
            "e5",
            "2025-10-01T08:00:00Z",
            "order_placed",
            r#","order_id":"o2","items":[{"book_id":"bk_1","quantity":0,"unit_price":5.0}],"total_price":5.0"#,
        ),
    ]
}

fn write_file(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, lines.join("\n") + "\n").expect("write input");
    path
}

fn no_progress(_: u64) {}

fn all_events(lake: &Lake) -> DataFrame {
    lake.scan_events()
        .expect("scan")
        .sort(["event_id"], Default::default())
        .collect()
        .expect("collect")
}

#[test]
fn ingest_counts_partitions_and_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let input = write_file(dir.path(), "a.jsonl", &sample_lines());
    let r = lake
        .ingest_file(&input, &IngestOptions::default(), &no_progress)
        .expect("ingest");
    assert_eq!(
        r,
        IngestReport {
            lines: 7,
            valid: 5,
            invalid: 2,
            duplicates: 1,
            test: 1
        }
    );
    // hive partitions by UTC date and hour: 09:30+02:00 is 07:30Z
    let mut parts: Vec<String> = lake
        .committed_files(FileKind::Events)
        .expect("files")
        .iter()
        .map(|p| {
            p.parent()
                .expect("hour dir")
                .strip_prefix(lake.events_dir())
                .expect("under events")
                .display()
                .to_string()
        })
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        [
            "date=2025-10-01/hour=07",
            "date=2025-10-01/hour=08",
            "date=2025-10-02/hour=23"
        ]
    );
    let df = all_events(&lake);
    assert_eq!(df.schema().as_ref(), &events_schema());
    assert_eq!(df.height(), 4);
    let ids: Vec<&str> = df
        .column("event_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(ids, ["e1", "e2", "e3", "e4"]);
    let ts = df
        .column("event_timestamp")
        .unwrap()
        .datetime()
        .unwrap()
        .physical()
        .get(1);
    assert_eq!(
        ts,
        Some(
            chrono::DateTime::parse_from_rfc3339("2025-10-01T07:30:00Z")
                .unwrap()
                .timestamp_millis()
        )
    );
    // the order's items survive as a list of structs
    let items = df
        .clone()
        .lazy()
        .filter(col("event_id").eq(lit("e3")))
        .select([col("items").list().len().alias("n"), col("promo_code")])
        .collect()
        .unwrap();
    assert_eq!(
        items.column("n").unwrap().get(0).unwrap(),
        AnyValue::UInt32(2)
    );
    let tests: Vec<bool> = df
        .column("is_test")
        .unwrap()
        .bool()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(tests, [false, false, false, true]);

    let bad = lake.bad_rows(None, None).expect("bad rows");
    assert_eq!(bad.len(), 2);
    assert_eq!(bad[0].line, "not json at all");
    assert_eq!(bad[0].line_number, 4);
    assert!(
        bad[0].reason.starts_with("line: not valid JSON"),
        "{}",
        bad[0].reason
    );
    assert_eq!(bad[1].line_number, 8);
    assert_eq!(
        bad[1].reason,
        "order_placed.items[0].quantity: must be an integer >= 1"
    );
    assert_eq!(bad[1].source, input.display().to_string());
}

#[test]
fn reingest_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let input = write_file(dir.path(), "a.jsonl", &sample_lines());
    lake.ingest_file(&input, &IngestOptions::default(), &no_progress)
        .expect("first");
    let before = all_events(&lake);
    let commits = lake.commits().expect("commits").len();
    let r = lake
        .ingest_file(&input, &IngestOptions::default(), &no_progress)
        .expect("second");
    assert_eq!((r.valid, r.duplicates, r.invalid), (5, 5, 2));
    assert!(before.equals_missing(&all_events(&lake)));
    assert_eq!(
        lake.commits().expect("commits").len(),
        commits,
        "no new commit"
    );
    assert_eq!(
        lake.bad_rows(None, None).expect("bad").len(),
        2,
        "bad rows not doubled"
    );

    // another file with one new event and one already known
    let more = write_file(
        dir.path(),
        "b.jsonl",
        &[
            event(
                "e1",
                "2025-10-01T07:00:00Z",
                "page_view",
                r#","page":"home""#,
            ),
            event(
                "e9",
                "2025-10-03T00:00:00Z",
                "page_view",
                r#","page":"cart""#,
            ),
        ],
    );
    let r = lake
        .ingest_file(&more, &IngestOptions::default(), &no_progress)
        .expect("third");
    assert_eq!((r.lines, r.valid, r.duplicates), (2, 2, 1));
    assert_eq!(all_events(&lake).height(), 5);
}

#[test]
fn small_flushes_and_gzip_give_the_same_lake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = Lake::open(dir.path().join("plain")).expect("open");
    let input = write_file(dir.path(), "a.jsonl", &sample_lines());
    plain
        .ingest_file(&input, &IngestOptions::default(), &no_progress)
        .expect("ingest");

    let gz_path = dir.path().join("a.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        fs::File::create(&gz_path).expect("create"),
        flate2::Compression::default(),
    );
    enc.write_all(&fs::read(&input).expect("read")).expect("gz");
    enc.finish().expect("finish");
    let gz = Lake::open(dir.path().join("gz")).expect("open");
    let opts = IngestOptions {
        flush_rows: 1,
        chunk_lines: 2,
        ..IngestOptions::default()
    };
    let r = gz
        .ingest_file(&gz_path, &opts, &no_progress)
        .expect("ingest gz");
    assert_eq!((r.valid, r.invalid, r.duplicates), (5, 2, 1));
    let cols = |l: &Lake| all_events(l).drop("ingested_at").expect("drop");
    assert!(cols(&plain).equals_missing(&cols(&gz)));
    assert_eq!(
        gz.committed_files(FileKind::Events).expect("files").len(),
        4
    );
}

#[test]
fn crash_before_manifest_then_rerun_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let input = write_file(dir.path(), "a.jsonl", &sample_lines());
    let crash = IngestOptions {
        crash_before_manifest: true,
        ..IngestOptions::default()
    };
    lake.ingest_file(&input, &crash, &no_progress)
        .expect_err("simulated crash");
    // data files were renamed into place, but nothing is committed: readers see nothing
    assert!(lake.commits().expect("commits").is_empty());
    assert_eq!(all_events(&lake).height(), 0);
    assert!(lake.bad_rows(None, None).expect("bad").is_empty());

    let r = lake
        .ingest_file(&input, &IngestOptions::default(), &no_progress)
        .expect("rerun");
    assert_eq!((r.valid, r.duplicates), (5, 1));
    assert_eq!(all_events(&lake).height(), 4);
    assert_eq!(lake.bad_rows(None, None).expect("bad").len(), 2);
    // the orphans are gone: every parquet file on disk is committed
    let committed = lake.committed_files(FileKind::Events).expect("files").len();
    let mut on_disk = 0;
    for d in fs::read_dir(lake.events_dir()).unwrap() {
        for h in fs::read_dir(d.unwrap().path()).unwrap() {
            on_disk += fs::read_dir(h.unwrap().path()).unwrap().count();
        }
    }
    assert_eq!(on_disk, committed);
}

#[test]
fn unreadable_input_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let missing = dir.path().join("nope.jsonl");
    let e = lake
        .ingest_file(&missing, &IngestOptions::default(), &no_progress)
        .expect_err("missing");
    assert!(e.to_string().contains("nope.jsonl"), "{e}");
}

#[test]
fn invalid_utf8_is_a_bad_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let path = dir.path().join("bin.jsonl");
    fs::write(&path, b"{\"event_id\": \"\xff\xfe\"}\n").expect("write");
    let r = lake
        .ingest_file(&path, &IngestOptions::default(), &no_progress)
        .expect("ingest");
    assert_eq!((r.lines, r.invalid), (1, 1));
    let bad = lake.bad_rows(None, None).expect("bad");
    assert!(
        bad[0].reason.starts_with("line: not valid UTF-8"),
        "{}",
        bad[0].reason
    );
}

/// The same lines gzipped are the same source: a re-ingest adds no bad rows again.
#[test]
fn the_same_lines_gzipped_add_no_bad_rows_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let plain = dir.path().join("a.jsonl");
    let valid = event(
        "g1",
        "2025-10-01T07:00:00Z",
        "page_view",
        r#","page":"home""#,
    );
    fs::write(&plain, format!("{valid}\nnot json\n{{\"x\": 1}}\n")).expect("write");
    let gz = dir.path().join("a.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        fs::File::create(&gz).expect("create"),
        flate2::Compression::default(),
    );
    enc.write_all(&fs::read(&plain).unwrap()).unwrap();
    enc.finish().unwrap();
    let first = lake
        .ingest_file(&plain, &IngestOptions::default(), &no_progress)
        .expect("plain");
    let bad = lake.bad_rows(None, None).expect("bad").len();
    assert_eq!((bad, first.invalid), (2, 2));
    assert_eq!(file_digest(&plain).unwrap().0, file_digest(&gz).unwrap().0);
    let again = lake
        .ingest_file(&gz, &IngestOptions::default(), &no_progress)
        .expect("gzip");
    assert_eq!(again.duplicates, 1);
    assert_eq!(lake.bad_rows(None, None).expect("bad").len(), bad);
}

/// A file ingested again after lines were appended (a rolling export) stores the bad rows of
/// its new lines only; its earlier invalid lines still count as read and invalid.
#[test]
fn a_grown_file_stores_only_its_new_bad_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let file = dir.path().join("day.jsonl");
    let valid = |id: &str| event(id, "2025-10-01T07:00:00Z", "page_view", r#","page":"home""#);
    fs::write(&file, format!("{}\nnot json\n{{\"x\": 1}}\n", valid("v1"))).expect("write");
    let first = lake
        .ingest_file(&file, &IngestOptions::default(), &no_progress)
        .expect("first");
    assert_eq!(first.invalid, 2);
    // Appended: a valid line and the same invalid text again, on a new line.
    fs::write(
        &file,
        format!(
            "{}\nnot json\n{{\"x\": 1}}\n{}\nnot json\n",
            valid("v1"),
            valid("v2")
        ),
    )
    .expect("grow");
    // The same file by another spelling of its path.
    let respelled = dir.path().join(".").join("day.jsonl");
    let again = lake
        .ingest_file(&respelled, &IngestOptions::default(), &no_progress)
        .expect("again");
    assert_eq!((again.lines, again.invalid, again.duplicates), (5, 3, 1));
    let rows = lake.bad_rows(None, None).expect("bad rows");
    let mut lines: Vec<i64> = rows.iter().map(|r| r.line_number).collect();
    lines.sort_unstable();
    assert_eq!(lines, [2, 3, 5], "each invalid line of the file once");
}

/// A byte order mark opening the file does not cost its first event; a bad row keeps its
/// line as sent, trailing spaces included, without the line's terminator.
#[test]
fn a_byte_order_mark_and_a_bad_rows_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let path = dir.path().join("bom.jsonl");
    let first = event(
        "b1",
        "2025-10-01T07:00:00Z",
        "product_view",
        r#","book_id":"bk_1","via":"search""#,
    );
    fs::write(
        &path,
        format!("\u{feff}{first}\n{{\"event_id\": 1}}   \r\n"),
    )
    .expect("write");
    let r = lake
        .ingest_file(&path, &IngestOptions::default(), &no_progress)
        .expect("ingest");
    assert_eq!((r.lines, r.valid, r.invalid), (2, 1, 1));
    let bad = lake.bad_rows(None, None).expect("bad");
    assert_eq!(bad[0].line, "{\"event_id\": 1}   ");
    assert_eq!(bad[0].line_number, 2);
}

fn parsed(line: &str) -> quire_events::Event {
    quire_events::parse_line(line).expect("valid event")
}

fn view(id: &str) -> quire_events::Event {
    parsed(&event(
        id,
        "2025-10-01T07:00:00Z",
        "page_view",
        r#","page":"home""#,
    ))
}

fn stream() -> Source {
    Source::stream("test")
}

/// A bus entry's bad row delivered again, after a restart or within one batch, is stored once.
#[test]
fn a_keyed_bad_row_is_stored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let row = || BadRow {
        line: "{".to_owned(),
        source: "http:r1".to_owned(),
        line_number: 0,
        reason: "line: not JSON".to_owned(),
        rejected_at: chrono::Utc::now(),
    };
    let mut w = Writer::open(&lake).expect("writer");
    let mut b = w.batch(usize::MAX).expect("batch");
    assert!(b.push_invalid_keyed("bad/1-0".into(), row()).unwrap());
    assert!(!b.push_invalid_keyed("bad/1-0".into(), row()).unwrap());
    assert_eq!(b.commit(stream()).expect("commit").invalid, 1);
    // The same writer, then a new one (a restart), get the entry again: nothing is stored.
    let mut b = w.batch(usize::MAX).expect("batch");
    assert!(!b.push_invalid_keyed("bad/1-0".into(), row()).unwrap());
    b.commit(stream()).expect("commit");
    let mut w = Writer::open(&lake).expect("reopen");
    let mut b = w.batch(usize::MAX).expect("batch");
    assert!(!b.push_invalid_keyed("bad/1-0".into(), row()).unwrap());
    assert!(b.push_invalid_keyed("bad/2-0".into(), row()).unwrap());
    b.commit(stream()).expect("commit");
    assert_eq!(lake.bad_rows(None, None).expect("bad rows").len(), 2);
    let keys: Vec<Vec<String>> = lake
        .commits()
        .unwrap()
        .into_iter()
        .filter_map(|c| match c.source {
            Source::Stream { bad_row_keys, .. } => Some(bad_row_keys),
            Source::File { .. } => None,
        })
        .collect();
    assert_eq!(
        keys,
        [vec!["bad/1-0".to_owned()], vec!["bad/2-0".to_owned()]]
    );
}

#[test]
fn a_writer_keeps_its_id_index_across_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let mut w = Writer::open(&lake).expect("writer");
    let mut b = w.batch(usize::MAX).expect("batch");
    assert_eq!(b.push_event(view("a")).expect("push"), Outcome::Accepted);
    assert_eq!(b.push_event(view("a")).expect("push"), Outcome::Duplicate);
    assert_eq!(b.push_event(view("b")).expect("push"), Outcome::Accepted);
    b.commit(stream()).expect("commit");
    assert_eq!(w.indexed_ids(), 2);
    // The next batch knows the committed ids without reading the lake again.
    let mut b = w.batch(usize::MAX).expect("batch");
    assert_eq!(b.push_event(view("b")).expect("push"), Outcome::Duplicate);
    assert_eq!(b.push_event(view("c")).expect("push"), Outcome::Accepted);
    let r = b.commit(stream()).expect("commit");
    assert_eq!((r.valid, r.duplicates), (2, 1));
    assert_eq!(all_events(&lake).height(), 3);
    assert_eq!(lake.commits().expect("commits").len(), 2);
}

#[test]
fn a_serial_writer_commits_every_partition_and_its_bad_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let mut w = Writer::open(&lake).expect("writer");
    w.set_parallel(false);
    let mut b = w.batch(usize::MAX).expect("batch");
    for (id, ts) in [
        ("h7", "2025-10-01T07:10:00Z"),
        ("h8", "2025-10-01T08:20:00Z"),
        ("d2", "2025-10-02T23:59:59Z"),
    ] {
        let e = parsed(&event(id, ts, "page_view", r#","page":"home""#));
        assert_eq!(b.push_event(e).expect("push"), Outcome::Accepted);
    }
    b.push_invalid(BadRow {
        line: "{".to_owned(),
        source: "http:r1".to_owned(),
        line_number: 0,
        reason: "line: not JSON".to_owned(),
        rejected_at: chrono::Utc::now(),
    })
    .expect("bad row");
    let r = b.commit(stream()).expect("commit");
    assert_eq!((r.valid, r.invalid), (3, 1));
    let commits = lake.commits().expect("commits");
    let kinds: Vec<FileKind> = commits[0].files.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            FileKind::Events,
            FileKind::Events,
            FileKind::Events,
            FileKind::BadRows
        ]
    );
    let ids = all_events(&lake);
    let ids = ids.column("event_id").expect("ids").str().expect("str");
    assert_eq!(ids.iter().flatten().collect::<Vec<_>>(), ["d2", "h7", "h8"]);
    assert_eq!(lake.bad_rows(None, None).expect("bad").len(), 1);
}

#[test]
fn a_writer_sees_what_other_writers_committed_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let mut w = Writer::open(&lake).expect("writer");
    let mut b = w.batch(usize::MAX).expect("batch");
    b.push_event(view("e0")).expect("push");
    b.commit(stream()).expect("commit");
    // A file ingest (its own writer) commits e1…e5 between two batches of `w`.
    let input = write_file(dir.path(), "a.jsonl", &sample_lines());
    lake.ingest_file(&input, &IngestOptions::default(), &no_progress)
        .expect("ingest");
    let mut b = w.batch(usize::MAX).expect("batch");
    assert_eq!(b.push_event(view("e1")).expect("push"), Outcome::Duplicate);
    assert_eq!(b.push_event(view("e0")).expect("push"), Outcome::Duplicate);
    assert_eq!(b.push_event(view("e6")).expect("push"), Outcome::Accepted);
    b.commit(stream()).expect("commit");
    let ids = all_events(&lake);
    let ids = ids.column("event_id").expect("ids").str().expect("str");
    let ids: Vec<&str> = ids.iter().flatten().collect();
    assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4", "e6"]);
    let seqs: Vec<u64> = lake
        .commits()
        .expect("commits")
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[test]
fn a_batch_dropped_before_its_commit_leaves_the_index_and_the_lake_as_they_were() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let mut w = Writer::open(&lake).expect("writer");
    // flush_rows 1: the event is written to a file at once, then the batch is abandoned.
    let mut b = w.batch(1).expect("batch");
    assert_eq!(b.push_event(view("a")).expect("push"), Outcome::Accepted);
    drop(b);
    assert_eq!(w.indexed_ids(), 0);
    let mut b = w.batch(usize::MAX).expect("batch");
    assert_eq!(
        b.push_event(view("a")).expect("push"),
        Outcome::Accepted,
        "the id of an uncommitted batch is not known to the lake"
    );
    b.commit(stream()).expect("commit");
    assert_eq!(all_events(&lake).height(), 1);
    // The abandoned batch's file was removed before the next batch: every file is committed.
    let mut on_disk = 0;
    for d in fs::read_dir(lake.events_dir()).unwrap() {
        for h in fs::read_dir(d.unwrap().path()).unwrap() {
            on_disk += fs::read_dir(h.unwrap().path()).unwrap().count();
        }
    }
    assert_eq!(on_disk, 1);
}

fn write_csv(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).expect("write csv");
    p
}

/// A dimension table as loaded.
fn loaded(lake: &Lake, table: DimTable) -> DataFrame {
    lake.scan_dim(table)
        .expect("scan")
        .expect("loaded")
        .collect()
        .expect("collect")
}

#[test]
fn dims_load_types_and_replaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let books = write_csv(
        dir.path(),
        "books.csv",
        "book_id,title,author,genre,series,series_index,price,unit_cost,publication_year,average_rating,ratings_count\n\
         bk_1,\"Dune, Part 1\",Frank Herbert,Science Fiction,Dune,1,9.99,4.5,1965,4.2,100\n\
         bk_2,Solo,A. Author,History,,,12.5,6,,3.9,7\n",
    );
    assert_eq!(lake.load_dim(DimTable::Books, &books).expect("load"), 2);
    let df = loaded(&lake, DimTable::Books);
    assert_eq!(df.column("series_index").unwrap().dtype(), &DataType::Int64);
    assert_eq!(df.column("series").unwrap().null_count(), 1);
    assert_eq!(
        df.column("title").unwrap().str().unwrap().get(0),
        Some("Dune, Part 1")
    );
    assert_eq!(
        df.column("price").unwrap().f64().unwrap().get(1),
        Some(12.5)
    );

    let users = write_csv(
        dir.path(),
        "users.csv",
        "user_id,signup_date,country\nusr_1,2025-09-01,DE\n",
    );
    assert_eq!(lake.load_dim(DimTable::Users, &users).expect("users"), 1);
    let u = loaded(&lake, DimTable::Users);
    assert_eq!(u.column("signup_date").unwrap().dtype(), &DataType::Date);

    // a reload replaces the table
    let books2 = write_csv(
        dir.path(),
        "books2.csv",
        "book_id,title,author,genre,series,series_index,price,unit_cost,publication_year,average_rating,ratings_count\n\
         bk_3,T,A,Poetry,,,1,0.5,2001,4,1\n",
    );
    assert_eq!(lake.load_dim(DimTable::Books, &books2).expect("reload"), 1);

    // Parquet in, same table out
    let pq = dir.path().join("books.parquet");
    let mut df3 = loaded(&lake, DimTable::Books);
    write_parquet_atomic(&mut df3, &pq).expect("write parquet");
    assert_eq!(lake.load_dim(DimTable::Books, &pq).expect("parquet"), 1);
}

#[test]
fn dims_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let check = |name: &str, text: &str, table: DimTable, expected: &str| {
        let p = write_csv(dir.path(), name, text);
        let e = lake.load_dim(table, &p).expect_err(expected).to_string();
        assert_eq!(e, format!("{}: {expected}", p.display()));
    };
    check(
        "s1.csv",
        "date,channel,spend\n2025-10-01,paid,10\n2025-10-02,paid,ten\n",
        DimTable::MarketingSpend,
        "line 3: column spend: cannot read \"ten\" as a number",
    );
    check(
        "s2.csv",
        "date,channel,spend\n2025-10-01,tv,10\n",
        DimTable::MarketingSpend,
        "line 2: column channel: must be one of organic, paid, social, direct, email, referral, got \"tv\"",
    );
    check(
        "s3.csv",
        "date,channel,spend\n2025-13-01,paid,10\n",
        DimTable::MarketingSpend,
        "line 2: column date: cannot read \"2025-13-01\" as a date (YYYY-MM-DD)",
    );
    check(
        "s4.csv",
        "date,channel,spend\n2025-10-01,paid,-1\n",
        DimTable::MarketingSpend,
        "line 2: column spend: must be >= 0, got -1",
    );
    check(
        "u1.csv",
        "user_id,country\nusr_1,DE\n",
        DimTable::Users,
        "missing column signup_date (a users table needs user_id, signup_date, country)",
    );
    check(
        "u2.csv",
        "user_id,signup_date,country\nusr_1,2025-01-01,DE\nusr_1,2025-01-02,FR\n",
        DimTable::Users,
        "duplicate user_id usr_1 at lines 2 and 3",
    );
    check(
        "u2b.csv",
        "user_id,signup_date,country\nusr_1,2025-01-01,DE\n\nusr_1,2025-01-02,FR\n",
        DimTable::Users,
        "duplicate user_id usr_1 at lines 2 and 4",
    );
    check(
        "u3.csv",
        "user_id,signup_date,country\n,2025-01-01,DE\n",
        DimTable::Users,
        "line 2: column user_id: a value is required",
    );
    check(
        "u4.csv",
        "user_id,signup_date,country\nusr_1,2025-2-1,DE\n",
        DimTable::Users,
        "line 2: column signup_date: cannot read \"2025-2-1\" as a date (YYYY-MM-DD)",
    );
    check(
        "s5.csv",
        "date,channel,spend\n2025-10-01,paid,10\n2025-10-02,paid,NaN\n",
        DimTable::MarketingSpend,
        "line 3: column spend: must be a finite number, got NaN",
    );
    check(
        "s6.csv",
        "date,channel,spend\n2025-10-01,paid,inf\n",
        DimTable::MarketingSpend,
        "line 2: column spend: must be a finite number, got inf",
    );
    check(
        "b1.csv",
        "book_id,title,author,genre,price,unit_cost\nbk_1,T,A,G,9.99,-inf\n",
        DimTable::Books,
        "line 2: column unit_cost: must be >= 0, got -inf",
    );
    check(
        "b2.csv",
        "book_id,title,author,genre,price,unit_cost,average_rating\nbk_1,T,A,G,9.99,4,NaN\n",
        DimTable::Books,
        "line 2: column average_rating: must be a finite number, got NaN",
    );
    // A blank line is not a row, and the lines after it keep their numbers.
    check(
        "u5.csv",
        "user_id,signup_date,country\nusr_1,2025-01-01,DE\n\nusr_2,2025-01-0x,DE\n",
        DimTable::Users,
        "line 4: column signup_date: cannot read \"2025-01-0x\" as a date (YYYY-MM-DD)",
    );
    assert!(
        lake.scan_dim(DimTable::Users).unwrap().is_none(),
        "nothing loaded on error"
    );
    let blank = write_csv(
        dir.path(),
        "u6.csv",
        "user_id,signup_date,country\nusr_1,2025-01-01,DE\n\n",
    );
    assert_eq!(
        lake.load_dim(DimTable::Users, &blank).expect("blank line"),
        1
    );
}

/// Parquet as pandas or Spark write it: integer columns with nulls as floats, dates as
/// timestamps.
#[test]
fn dims_parquet_takes_float_integers_and_timestamp_dates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().join("lake")).expect("open");
    let mut books = df!(
        "book_id" => ["bk_1", "bk_2"],
        "title" => ["T", "U"],
        "author" => ["A", "B"],
        "genre" => ["G", "G"],
        "series_index" => [Some(2.0), None],
        "price" => [9.99, 5.0],
        "unit_cost" => [4.0, 2.0],
        "publication_year" => [Some(1999.0), None],
    )
    .expect("frame");
    let pq = dir.path().join("books.parquet");
    write_parquet_atomic(&mut books, &pq).expect("write");
    assert_eq!(lake.load_dim(DimTable::Books, &pq).expect("float ints"), 2);
    let df = loaded(&lake, DimTable::Books);
    let year = df.column("publication_year").unwrap();
    assert_eq!(year.dtype(), &DataType::Int64);
    assert_eq!(year.i64().unwrap().get(0), Some(1999));
    assert_eq!(year.i64().unwrap().get(1), None);

    let mut fraction = books.clone();
    fraction
        .with_column(Column::new("publication_year".into(), [Some(1999.5), None]))
        .unwrap();
    write_parquet_atomic(&mut fraction, &pq).expect("write");
    let e = lake
        .load_dim(DimTable::Books, &pq)
        .expect_err("1999.5")
        .to_string();
    assert!(
        e.ends_with("line 1: column publication_year: cannot read \"1999.5\" as an integer"),
        "{e}"
    );

    let day = chrono::NaiveDate::from_ymd_opt(2025, 1, 5).unwrap();
    let ms = day
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let mut users =
        df!("user_id" => ["usr_1"], "signup_date" => [ms], "country" => ["DE"]).expect("frame");
    users
        .with_column(
            users
                .column("signup_date")
                .unwrap()
                .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
                .unwrap(),
        )
        .unwrap();
    let pq = dir.path().join("users.parquet");
    write_parquet_atomic(&mut users, &pq).expect("write");
    assert_eq!(
        lake.load_dim(DimTable::Users, &pq).expect("timestamp date"),
        1
    );
    let u = loaded(&lake, DimTable::Users);
    assert_eq!(
        u.column("signup_date").unwrap().get(0).unwrap(),
        AnyValue::Date(20093)
    );
}
