//! `quire analyze sequences`: what users buy in a later session after buying A — transition
//! probabilities with counts, Wilson intervals and lift — and PrefixSpan (Pei et al. 2001) over
//! each user's purchase sequence (one itemset per purchasing session), by book or by genre.
//! With the books dimension, consecutive series volumes are checked for reading order.
//!
//! PrefixSpan is written here: the Rust crates found either handle sequences of single items
//! only (no itemsets, so the SPMF example cannot be expressed) or are unmaintained.

use std::collections::{BTreeMap, HashMap, HashSet};

use polars::prelude::*;

use crate::chart::{BarSeries, Chart, ChartKind};
use crate::customers::strs;
use crate::output::{AnalysisResult, Table};
use crate::stats::{Z95, wilson};
use crate::{Dataset, Error, Result};

/// A sequence of itemsets (each sorted ascending, without duplicates).
pub type Sequence = Vec<Vec<u32>>;

/// A frequent sequential pattern and the number of sequences containing it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pattern {
    pub itemsets: Vec<Vec<u32>>,
    pub count: u64,
}

/// Where the last item of the prefix matched in one sequence (earliest match).
#[derive(Clone, Copy)]
struct Proj {
    seq: usize,
    set: usize,
    pos: usize,
}

/// Every sequential pattern with at most `max_items` items contained in at least `min_count`
/// sequences (`min_count` ≥ 1).
pub fn prefixspan(db: &[Sequence], min_count: u64, max_items: usize) -> Vec<Pattern> {
    let min_count = min_count.max(1);
    let mut out = Vec::new();
    // Length-1 patterns: first occurrence of each item per sequence.
    let mut first: BTreeMap<u32, Vec<Proj>> = BTreeMap::new();
    for (s, seq) in db.iter().enumerate() {
        let mut seen = HashSet::new();
        for (i, set) in seq.iter().enumerate() {
            for (p, &x) in set.iter().enumerate() {
                if seen.insert(x) {
                    first.entry(x).or_default().push(Proj {
                        seq: s,
                        set: i,
                        pos: p,
                    });
                }
            }
        }
    }
    for (x, proj) in first {
        if proj.len() as u64 >= min_count && max_items >= 1 {
            let mut prefix = vec![vec![x]];
            out.push(Pattern {
                itemsets: prefix.clone(),
                count: proj.len() as u64,
            });
            grow(db, &proj, &mut prefix, 1, min_count, max_items, &mut out);
        }
    }
    out
}

fn grow(
    db: &[Sequence],
    proj: &[Proj],
    prefix: &mut Vec<Vec<u32>>,
    items: usize,
    min_count: u64,
    max_items: usize,
    out: &mut Vec<Pattern>,
) {
    if items >= max_items {
        return;
    }
    let last = prefix.last().cloned().unwrap_or_default();
    let max_last = last.last().copied().unwrap_or(0);
    let contains_all = |set: &[u32]| last.iter().all(|x| set.binary_search(x).is_ok());
    let mut s_count: BTreeMap<u32, u64> = BTreeMap::new();
    let mut i_count: BTreeMap<u32, u64> = BTreeMap::new();
    for pr in proj {
        let seq = &db[pr.seq];
        let (mut s_seen, mut i_seen) = (HashSet::new(), HashSet::new());
        for &x in &seq[pr.set][pr.pos + 1..] {
            i_seen.insert(x);
        }
        for set in &seq[pr.set + 1..] {
            for &x in set {
                s_seen.insert(x);
            }
            if contains_all(set) {
                for &x in set.iter().filter(|&&x| x > max_last) {
                    i_seen.insert(x);
                }
            }
        }
        for x in s_seen {
            *s_count.entry(x).or_default() += 1;
        }
        for x in i_seen {
            *i_count.entry(x).or_default() += 1;
        }
    }
    // I-extensions: x joins the last itemset.
    for (&x, &c) in i_count.iter().filter(|(_, c)| **c >= min_count) {
        let mut next = Vec::with_capacity(proj.len());
        for pr in proj {
            let seq = &db[pr.seq];
            if let Some(p) = seq[pr.set][pr.pos + 1..].iter().position(|&y| y == x) {
                next.push(Proj {
                    seq: pr.seq,
                    set: pr.set,
                    pos: pr.pos + 1 + p,
                });
                continue;
            }
            if let Some((k, p)) = seq
                .iter()
                .enumerate()
                .skip(pr.set + 1)
                .find_map(|(k, set)| {
                    if contains_all(set) {
                        set.binary_search(&x).ok().map(|p| (k, p))
                    } else {
                        None
                    }
                })
            {
                next.push(Proj {
                    seq: pr.seq,
                    set: k,
                    pos: p,
                });
            }
        }
        if let Some(l) = prefix.last_mut() {
            l.push(x);
        }
        out.push(Pattern {
            itemsets: prefix.clone(),
            count: c,
        });
        grow(db, &next, prefix, items + 1, min_count, max_items, out);
        if let Some(l) = prefix.last_mut() {
            l.pop();
        }
    }
    // S-extensions: x starts a new itemset.
    for (&x, &c) in s_count.iter().filter(|(_, c)| **c >= min_count) {
        let next: Vec<Proj> = proj
            .iter()
            .filter_map(|pr| {
                db[pr.seq]
                    .iter()
                    .enumerate()
                    .skip(pr.set + 1)
                    .find_map(|(k, set)| {
                        set.binary_search(&x).ok().map(|p| Proj {
                            seq: pr.seq,
                            set: k,
                            pos: p,
                        })
                    })
            })
            .collect();
        prefix.push(vec![x]);
        out.push(Pattern {
            itemsets: prefix.clone(),
            count: c,
        });
        grow(db, &next, prefix, items + 1, min_count, max_items, out);
        prefix.pop();
    }
}

/// Later-session transitions A → B.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub from: u32,
    pub to: u32,
    /// Users who bought `to` in a session after one where they bought `from`.
    pub count: u64,
    /// Users who bought `from` in a session followed by another purchasing session.
    pub from_users: u64,
    pub probability: f64,
    pub lo: f64,
    pub hi: f64,
    /// probability / the share of repeat purchasers who bought `to` in a non-first session.
    pub lift: f64,
}

/// Transitions of every pair seen by at least `min_count` users (each user counts a pair once).
pub fn transitions(db: &[Sequence], min_count: u64) -> Vec<Transition> {
    let mut pair: HashMap<(u32, u32), u64> = HashMap::new();
    let mut from_users: HashMap<u32, u64> = HashMap::new();
    let mut later_users: HashMap<u32, u64> = HashMap::new();
    let mut repeaters = 0u64;
    for seq in db.iter().filter(|s| s.len() >= 2) {
        repeaters += 1;
        let mut pairs = HashSet::new();
        let mut froms = HashSet::new();
        let mut laters = HashSet::new();
        for (i, set) in seq.iter().enumerate().take(seq.len() - 1) {
            for &a in set {
                froms.insert(a);
                for later in &seq[i + 1..] {
                    for &b in later {
                        pairs.insert((a, b));
                    }
                }
            }
        }
        for set in &seq[1..] {
            laters.extend(set.iter().copied());
        }
        for p in pairs {
            *pair.entry(p).or_default() += 1;
        }
        for a in froms {
            *from_users.entry(a).or_default() += 1;
        }
        for b in laters {
            *later_users.entry(b).or_default() += 1;
        }
    }
    let mut out: Vec<Transition> = pair
        .into_iter()
        .filter(|(_, c)| *c >= min_count.max(1))
        .map(|((a, b), c)| {
            let n = from_users[&a];
            let p = c as f64 / n as f64;
            let base = later_users.get(&b).copied().unwrap_or(0) as f64 / repeaters as f64;
            let (lo, hi) = wilson(c, n, Z95);
            Transition {
                from: a,
                to: b,
                count: c,
                from_users: n,
                probability: p,
                lo,
                hi,
                lift: p / base,
            }
        })
        .collect();
    out.sort_by(|x, y| {
        y.count
            .cmp(&x.count)
            .then(y.lift.total_cmp(&x.lift))
            .then((x.from, x.to).cmp(&(y.from, y.to)))
    });
    out
}

/// Users who bought `b` in a later session than `a`, for ordered pairs — the series check.
pub fn ordered_pair_users(db: &[Sequence], a: u32, b: u32) -> u64 {
    db.iter()
        .filter(|seq| {
            seq.iter()
                .position(|s| s.binary_search(&a).is_ok())
                .is_some_and(|i| seq[i + 1..].iter().any(|s| s.binary_search(&b).is_ok()))
        })
        .count() as u64
}

/// The parameters of `quire analyze sequences`.
#[derive(Clone, Debug)]
pub struct SequenceParams {
    /// `book` or `genre`.
    pub by: String,
    /// PrefixSpan minimum support, a fraction of users with purchases.
    pub min_support: f64,
    pub max_items: usize,
    /// Transitions seen by fewer users are left out.
    pub min_count: u64,
    pub top: usize,
}

impl Default for SequenceParams {
    fn default() -> Self {
        SequenceParams {
            by: "book".into(),
            min_support: 0.005,
            max_items: 3,
            min_count: 3,
            top: 30,
        }
    }
}

/// Encoded purchase sequences: per user, their purchasing sessions' item sets in time order.
#[derive(Clone, Debug, Default)]
pub struct Purchases {
    pub names: Vec<String>,
    pub sequences: Vec<Sequence>,
    /// Series volumes: (series, index, item id), when known.
    pub volumes: Vec<(String, i64, u32)>,
}

fn pattern_text(p: &Pattern, names: &[String]) -> String {
    let sets: Vec<String> = p
        .itemsets
        .iter()
        .map(|s| {
            format!(
                "({})",
                s.iter()
                    .map(|&i| names[i as usize].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect();
    format!("<{}>", sets.join(""))
}

pub fn analyze(pur: &Purchases, p: &SequenceParams) -> Result<AnalysisResult> {
    let users = pur.sequences.len() as u64;
    if users == 0 {
        return Err(Error::NoAnswer("no purchases in the range".into()));
    }
    if !(p.min_support > 0.0 && p.min_support <= 1.0) {
        return Err(Error::Invalid(format!(
            "--min-support {}: must be in (0, 1]",
            p.min_support
        )));
    }
    let name = |i: u32| pur.names[i as usize].clone();
    let mut r = AnalysisResult::new("sequences", format!("Purchase sequences by {}", p.by));
    let repeaters = pur.sequences.iter().filter(|s| s.len() >= 2).count() as u64;
    r.fact("users", users);
    r.fact("repeat_purchasers", repeaters);
    let tr = transitions(&pur.sequences, p.min_count);
    let shown: Vec<&Transition> = tr.iter().take(p.top).collect();
    r.tables.push(
        Table::new(
            "transitions",
            "After A, bought B in a later session (users; Wilson 95%)",
        )
        .text("from", shown.iter().map(|t| name(t.from)))
        .text("to", shown.iter().map(|t| name(t.to)))
        .int("users", shown.iter().map(|t| t.count as i64))
        .int("from_users", shown.iter().map(|t| t.from_users as i64))
        .pct("probability", shown.iter().map(|t| t.probability))
        .pct("lo", shown.iter().map(|t| t.lo))
        .pct("hi", shown.iter().map(|t| t.hi))
        .float("lift", shown.iter().map(|t| t.lift), 2),
    );
    let min_count = (p.min_support * users as f64).ceil().max(1.0) as u64;
    let started = std::time::Instant::now();
    let mut pats = prefixspan(&pur.sequences, min_count, p.max_items);
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        patterns = pats.len(),
        "prefixspan"
    );
    pats.sort_by(|a, b| b.count.cmp(&a.count).then(a.itemsets.cmp(&b.itemsets)));
    r.fact("prefixspan_min_count", min_count);
    r.fact("pattern_count", pats.len() as u64);
    let multi: Vec<&Pattern> = pats
        .iter()
        .filter(|x| x.itemsets.len() >= 2)
        .take(p.top * 2)
        .collect();
    r.tables.push(
        Table::new(
            "patterns",
            "Sequential patterns over two or more sessions (PrefixSpan)",
        )
        .text("pattern", multi.iter().map(|x| pattern_text(x, &pur.names)))
        .int("users", multi.iter().map(|x| x.count as i64))
        .pct(
            "support",
            multi.iter().map(|x| x.count as f64 / users as f64),
        ),
    );
    // Series order: consecutive volumes bought in order vs in reverse.
    if !pur.volumes.is_empty() {
        let mut by_series: BTreeMap<&str, Vec<(i64, u32)>> = BTreeMap::new();
        for (s, i, id) in &pur.volumes {
            by_series.entry(s.as_str()).or_default().push((*i, *id));
        }
        let (mut fwd, mut rev) = (0u64, 0u64);
        for vols in by_series.values_mut() {
            vols.sort_unstable();
            for w in vols.windows(2) {
                if w[1].0 == w[0].0 + 1 {
                    fwd += ordered_pair_users(&pur.sequences, w[0].1, w[1].1);
                    rev += ordered_pair_users(&pur.sequences, w[1].1, w[0].1);
                }
            }
        }
        let n = fwd + rev;
        let (lo, hi) = wilson(fwd, n, Z95);
        r.tables.push(
            Table::new(
                "series_order",
                "Consecutive series volumes bought in different sessions: in order vs reverse",
            )
            .int("in_order_users", [fwd as i64])
            .int("reverse_users", [rev as i64])
            .opt_pct(
                "in_order_share",
                vec![(n > 0).then(|| fwd as f64 / n as f64)],
            )
            .pct("lo", [lo])
            .pct("hi", [hi]),
        );
    }
    let chart: Vec<&Transition> = shown.iter().copied().take(12).collect();
    r.charts.push(Chart {
        name: "transitions".into(),
        title: "Most common later-session transitions (probability, 95% CI)".into(),
        x_label: "from → to".into(),
        y_label: "P(to later | from)".into(),
        kind: ChartKind::Bars {
            categories: chart
                .iter()
                .map(|t| format!("{}→{}", name(t.from), name(t.to)))
                .collect(),
            series: vec![BarSeries {
                name: "probability".into(),
                values: chart.iter().map(|t| t.probability).collect(),
                ci: Some(chart.iter().map(|t| (t.lo, t.hi)).collect()),
            }],
        },
    });
    r.note("a user's sequence is their purchasing sessions in time order, each the set of items bought in it; probability = users who bought B in a later session / users who bought A in a session followed by another purchase; lift = probability / share of repeat purchasers who bought B in a non-first session");
    Ok(r)
}

/// The lake side: per user, the item sets (book ids or genres) of each purchasing session.
pub fn prepare(ds: &Dataset, by: &str) -> Result<Purchases> {
    if by != "book" && by != "genre" {
        return Err(Error::Invalid(format!("--by {by}: expected book or genre")));
    }
    let sessions = ds
        .orders()?
        .lazy()
        .select([col("order_id"), col("session_id")]);
    let items = ds
        .items()?
        .lazy()
        .join(
            sessions,
            [col("order_id")],
            [col("order_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(
            col("session_id")
                .fill_null(col("order_id"))
                .alias("session_id"),
        )
        .sort(
            ["user_id", "order_timestamp"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()?;
    let users = strs(&items, "user_id")?;
    let sids = strs(&items, "session_id")?;
    let keys = strs(&items, if by == "book" { "book_id" } else { "genre" })?;
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut sequences: Vec<Sequence> = Vec::new();
    let (mut cur_user, mut cur_sid): (Option<&str>, Option<&str>) = (None, None);
    for i in 0..items.height() {
        let (Some(u), Some(s)) = (users[i].as_deref(), sids[i].as_deref()) else {
            continue;
        };
        let key = keys[i].clone().unwrap_or_else(|| "(unknown)".into());
        let id = *ids.entry(key.clone()).or_insert_with(|| {
            names.push(key);
            (names.len() - 1) as u32
        });
        if cur_user != Some(u) {
            sequences.push(Vec::new());
            cur_user = Some(u);
            cur_sid = None;
        }
        let seq = sequences
            .last_mut()
            .ok_or_else(|| Error::Internal("no sequence".into()))?;
        if cur_sid != Some(s) {
            seq.push(Vec::new());
            cur_sid = Some(s);
        }
        if let Some(set) = seq.last_mut()
            && let Err(pos) = set.binary_search(&id)
        {
            set.insert(pos, id);
        }
    }
    let mut volumes = Vec::new();
    if by == "book"
        && let Some(books) = ds.books()
    {
        let b = books
            .select([
                col("book_id"),
                col("series"),
                col("series_index").cast(DataType::Int64),
            ])
            .filter(
                col("series")
                    .is_not_null()
                    .and(col("series_index").is_not_null()),
            )
            .collect()?;
        let bid = strs(&b, "book_id")?;
        let ser = strs(&b, "series")?;
        let idx = crate::customers::i64s(&b, "series_index")?;
        for i in 0..b.height() {
            if let (Some(bk), Some(s), Some(ix)) = (&bid[i], &ser[i], idx[i])
                && !s.is_empty()
                && let Some(&id) = ids.get(bk)
            {
                volumes.push((s.clone(), ix, id));
            }
        }
    }
    Ok(Purchases {
        names,
        sequences,
        volumes,
    })
}

/// Reads a sequence database in SPMF's format: one sequence per line, items as integers,
/// `-1` ends an itemset and `-2` the sequence; `@ITEM=<id>=<name>` lines name items (other
/// `@`/`#` lines are ignored). Errors name the line.
pub fn read_spmf(path: &std::path::Path) -> Result<Purchases> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    let mut named: HashMap<i64, String> = HashMap::new();
    let mut raw: Vec<Vec<Vec<i64>>> = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("@ITEM=") {
            if let Some((id, name)) = rest.split_once('=')
                && let Ok(id) = id.parse()
            {
                named.insert(id, name.to_owned());
            }
            continue;
        }
        if line.is_empty() || line.starts_with('@') || line.starts_with('#') {
            continue;
        }
        let mut seq = Vec::new();
        let mut set: Vec<i64> = Vec::new();
        for tok in line.split_whitespace() {
            let v: i64 = tok.parse().map_err(|_| {
                Error::Invalid(format!(
                    "{}:{}: {tok:?} is not an integer",
                    path.display(),
                    ln + 1
                ))
            })?;
            match v {
                -1 => {
                    if !set.is_empty() {
                        seq.push(std::mem::take(&mut set));
                    }
                }
                -2 => break,
                v if v >= 0 => set.push(v),
                _ => {
                    return Err(Error::Invalid(format!(
                        "{}:{}: item {v} is negative (only -1 and -2 are markers)",
                        path.display(),
                        ln + 1
                    )));
                }
            }
        }
        if !set.is_empty() {
            seq.push(set);
        }
        raw.push(seq);
    }
    let mut ids: HashMap<i64, u32> = HashMap::new();
    let mut names = Vec::new();
    let sequences = raw
        .into_iter()
        .map(|seq| {
            seq.into_iter()
                .map(|set| {
                    let mut s: Vec<u32> = set
                        .into_iter()
                        .map(|v| {
                            *ids.entry(v).or_insert_with(|| {
                                names.push(named.get(&v).cloned().unwrap_or_else(|| v.to_string()));
                                (names.len() - 1) as u32
                            })
                        })
                        .collect();
                    s.sort_unstable();
                    s.dedup();
                    s
                })
                .collect()
        })
        .collect();
    Ok(Purchases {
        names,
        sequences,
        volumes: Vec::new(),
    })
}

/// Writes `pur` in SPMF's format (item ids with `@ITEM` name lines), as [`read_spmf`] reads.
pub fn write_spmf(path: &std::path::Path, pur: &Purchases) -> Result<()> {
    use std::fmt::Write as _;
    let mut out = String::from("@CONVERTED_FROM_TEXT\n");
    for (i, n) in pur.names.iter().enumerate() {
        let _ = writeln!(out, "@ITEM={i}={n}");
    }
    for seq in &pur.sequences {
        for set in seq {
            for x in set {
                let _ = write!(out, "{x} ");
            }
            out.push_str("-1 ");
        }
        out.push_str("-2\n");
    }
    std::fs::write(path, out).map_err(|source| Error::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    })
}

pub fn run(ds: &Dataset, p: &SequenceParams) -> Result<AnalysisResult> {
    analyze(&prepare(ds, &p.by)?, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spmf() -> Vec<Sequence> {
        vec![
            vec![vec![1], vec![1, 2, 3], vec![1, 3], vec![4], vec![3, 6]],
            vec![vec![1, 4], vec![3], vec![2, 3], vec![1, 5]],
            vec![vec![5, 6], vec![1, 2], vec![4, 6], vec![3], vec![2]],
            vec![vec![5], vec![7], vec![1, 6], vec![3], vec![2], vec![3]],
        ]
    }

    fn contains(seq: &Sequence, pat: &[Vec<u32>]) -> bool {
        let mut i = 0;
        for set in seq {
            if i < pat.len() && pat[i].iter().all(|x| set.contains(x)) {
                i += 1;
            }
        }
        i == pat.len()
    }

    #[test]
    fn prefixspan_finds_the_53_spmf_patterns() {
        let db = spmf();
        let pats = prefixspan(&db, 2, usize::MAX);
        assert_eq!(pats.len(), 53);
        // Every count is right, and no pattern is listed twice.
        for p in &pats {
            let c = db.iter().filter(|s| contains(s, &p.itemsets)).count() as u64;
            assert_eq!(c, p.count, "{:?}", p.itemsets);
        }
        let mut keys: Vec<_> = pats.iter().map(|p| p.itemsets.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 53);
        // Two patterns of SPMF's listing, checked by hand: an itemset then an item, three sessions.
        assert!(
            pats.iter()
                .any(|p| p.itemsets == vec![vec![1, 2], vec![3]] && p.count == 2)
        );
        assert!(
            pats.iter()
                .any(|p| p.itemsets == vec![vec![1], vec![3], vec![2]] && p.count == 3)
        );
        // Length cap.
        assert!(
            prefixspan(&db, 2, 1)
                .iter()
                .all(|p| p.itemsets.len() == 1 && p.itemsets[0].len() == 1)
        );
    }

    #[test]
    fn spmf_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.txt");
        let pur = Purchases {
            names: vec!["bk_1".into(), "bk_2".into(), "bk_3".into()],
            sequences: vec![vec![vec![0, 1], vec![2]], vec![vec![1]]],
            volumes: Vec::new(),
        };
        write_spmf(&path, &pur).unwrap();
        let back = read_spmf(&path).unwrap();
        assert_eq!(back.names, pur.names);
        assert_eq!(back.sequences, pur.sequences);
        std::fs::write(&path, "1 -1 x -2\n").unwrap();
        assert!(read_spmf(&path).unwrap_err().to_string().contains(":1:"));
    }

    #[test]
    fn transitions_by_hand() {
        // u1: (0)(1); u2: (0)(1)(1); u3: (0)(2); u4: (1)
        let db: Vec<Sequence> = vec![
            vec![vec![0], vec![1]],
            vec![vec![0], vec![1], vec![1]],
            vec![vec![0], vec![2]],
            vec![vec![1]],
        ];
        let t = transitions(&db, 1);
        let t01 = t.iter().find(|x| x.from == 0 && x.to == 1).unwrap();
        assert_eq!((t01.count, t01.from_users), (2, 3));
        // base: repeaters 3; bought 1 in a later session: u1, u2 → 2/3; lift = (2/3)/(2/3) = 1.
        assert!((t01.lift - 1.0).abs() < 1e-12);
        let t11 = t.iter().find(|x| x.from == 1 && x.to == 1).unwrap();
        // Only u2 bought 1 in a session followed by another purchase.
        assert_eq!((t11.count, t11.from_users), (1, 1));
        assert_eq!(ordered_pair_users(&db, 0, 1), 2);
        assert_eq!(ordered_pair_users(&db, 1, 0), 0);
    }
}
