//! In-process throughput of the collect and KPI layers on a simulated bookstore:
//! validation per line, streaming ingest into a fresh lake, and the KPI replay.
//! The side-by-side comparison with DuckDB is `benches/kpi_replay` (`make bench`).

use std::fs;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quire_kpi::{DateRange, Dims};
use quire_lake::{IngestOptions, Lake};

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = quire_benches::simulated_events(dir.path(), 7, 4_000).expect("simulate");
    let text = fs::read_to_string(&events).expect("read events");
    let lines: Vec<&str> = text.lines().collect();

    let mut g = c.benchmark_group("collect");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("parse_line", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(quire_events::parse_line(l).is_ok());
            }
        })
    });
    g.sample_size(10);
    g.bench_function("ingest_file", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().expect("lake dir"),
            |lake_dir| {
                let lake = Lake::open(lake_dir.path()).expect("lake");
                black_box(
                    lake.ingest_file(&events, &IngestOptions::default(), &|_| {})
                        .expect("ingest"),
                );
            },
        )
    });
    g.finish();

    let lake = Lake::open(dir.path().join("lake")).expect("lake");
    lake.ingest_file(&events, &IngestOptions::default(), &|_| {})
        .expect("ingest");
    let mut g = c.benchmark_group("kpis");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.sample_size(10);
    g.bench_function("kpi_report", |b| {
        b.iter(|| {
            let report = quire_kpi::kpi_report(
                lake.scan_events().expect("scan"),
                &Dims::default(),
                DateRange::default(),
                10,
            )
            .expect("kpis");
            black_box(report.daily.len())
        })
    });
    g.finish();
}

criterion_group!(collect, benches);
criterion_main!(collect);
