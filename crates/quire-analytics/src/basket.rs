//! `quire analyze basket`: association rules by FP-growth, exactly as `contracts/cli.md`
//! defines them: an order's distinct `book_id`s are one transaction; every rule with one
//! consequent book whose support ≥ S and confidence ≥ C, the thresholds compared exactly as
//! fractions of counts (8/10 meets 0.8); sorted by lift descending.
//!
//! FP-growth is written here (Han, Pei & Yin 2000) because no maintained Rust crate offers it
//! with integer counts: the crates found (`fp-growth`, `rust-rule-miner`) are unmaintained or
//! compute support as floats, which loses the exact thresholds the contract requires.

use std::collections::HashMap;

use polars::prelude::*;

use crate::chart::{BarSeries, Chart, ChartKind};
use crate::output::{AnalysisResult, Table};
use crate::{Dataset, Error, Result};

/// A threshold in [0, 1] kept as an exact decimal fraction `num / den` (`"0.001"` is 1/1000),
/// so that `count / n ≥ threshold` is decided in integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fraction {
    pub num: u128,
    pub den: u128,
}

impl Fraction {
    /// Parses a plain decimal (`0.8`, `.25`, `1`, `0.0010`); `what` names the flag in errors.
    pub fn parse(s: &str, what: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!(
                "{what}: expected a decimal number between 0 and 1 such as 0.001, got {s:?}"
            ))
        };
        let t = s.trim();
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 30
        {
            return Err(bad());
        }
        let den = 10u128.pow(frac.len() as u32);
        let int_v: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let frac_v: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad())?
        };
        let num = int_v
            .checked_mul(den)
            .and_then(|x| x.checked_add(frac_v))
            .ok_or_else(bad)?;
        if num > den {
            return Err(bad());
        }
        Ok(Fraction { num, den })
    }

    /// `count / total ≥ self`, exactly.
    pub fn met_by(&self, count: u64, total: u64) -> bool {
        u128::from(count) * self.den >= self.num * u128::from(total)
    }

    /// The smallest count meeting the threshold out of `total`.
    pub fn min_count(&self, total: u64) -> u64 {
        let need = self.num * u128::from(total);
        u64::try_from(need.div_ceil(self.den)).unwrap_or(u64::MAX)
    }

    pub fn as_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

/// One association rule `antecedent → consequent` (item indices into the caller's names).
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Sorted item ids.
    pub antecedent: Vec<u32>,
    pub consequent: u32,
    /// Transactions containing antecedent ∪ consequent.
    pub count: u64,
    pub antecedent_count: u64,
    pub consequent_count: u64,
    pub support: f64,
    pub confidence: f64,
    pub lift: f64,
}

/// Frequent itemsets and the transaction count.
#[derive(Clone, Debug, Default)]
pub struct Itemsets {
    pub transactions: u64,
    /// Sorted item ids → number of transactions containing them.
    pub counts: HashMap<Vec<u32>, u64>,
    /// `false` when mining stopped at its limit ([`MAX_ITEMSETS`]): `counts` is then a part
    /// of them.
    pub complete: bool,
}

/// Frequent itemsets mined, and candidate rules, at most (some hundreds of MB): a low support
/// over few orders makes every subset of a large order frequent (25 books: 2^25 itemsets, 25 ×
/// 2^24 rules), which would exhaust memory; the analysis stops there and says how to narrow it.
pub const MAX_ITEMSETS: usize = 2_000_000;

struct Node {
    item: u32,
    count: u64,
    parent: usize,
    children: Vec<usize>,
}

/// An FP-tree over items `0..n_items` (already ranked: smaller id = more frequent).
struct Tree {
    nodes: Vec<Node>,
    /// Per item, the nodes that hold it.
    heads: Vec<Vec<usize>>,
    item_counts: Vec<u64>,
}

impl Tree {
    fn new(n_items: usize) -> Self {
        Tree {
            nodes: vec![Node {
                item: u32::MAX,
                count: 0,
                parent: usize::MAX,
                children: Vec::new(),
            }],
            heads: vec![Vec::new(); n_items],
            item_counts: vec![0; n_items],
        }
    }

    /// Inserts a path of items in rank order with weight `count`.
    fn insert(&mut self, path: &[u32], count: u64) {
        let mut at = 0;
        for &item in path {
            self.item_counts[item as usize] += count;
            let found = self.nodes[at]
                .children
                .iter()
                .copied()
                .find(|&c| self.nodes[c].item == item);
            at = match found {
                Some(c) => {
                    self.nodes[c].count += count;
                    c
                }
                None => {
                    let id = self.nodes.len();
                    self.nodes.push(Node {
                        item,
                        count,
                        parent: at,
                        children: Vec::new(),
                    });
                    self.nodes[at].children.push(id);
                    self.heads[item as usize].push(id);
                    id
                }
            };
        }
    }
}

/// Mines `tree` for itemsets extending `suffix` (items in global rank ids).
fn mine(
    tree: &Tree,
    suffix: &mut Vec<u32>,
    (min_count, max_len, limit): (u64, usize, usize),
    out: &mut HashMap<Vec<u32>, u64>,
) {
    for item in (0..tree.heads.len()).rev() {
        // One past the limit tells a truncated mining from one that found exactly `limit`.
        if out.len() > limit {
            return;
        }
        let support = tree.item_counts[item];
        if support < min_count || tree.heads[item].is_empty() {
            continue;
        }
        suffix.push(item as u32);
        let mut key = suffix.clone();
        key.sort_unstable();
        out.insert(key, support);
        if suffix.len() < max_len {
            // Conditional pattern base: the prefix path of each node holding `item`.
            let mut paths: Vec<(Vec<u32>, u64)> = Vec::with_capacity(tree.heads[item].len());
            let mut cond_counts = vec![0u64; item];
            for &n in &tree.heads[item] {
                let c = tree.nodes[n].count;
                let mut path = Vec::new();
                let mut p = tree.nodes[n].parent;
                while p != 0 {
                    path.push(tree.nodes[p].item);
                    cond_counts[tree.nodes[p].item as usize] += c;
                    p = tree.nodes[p].parent;
                }
                path.reverse();
                paths.push((path, c));
            }
            if cond_counts.iter().any(|&c| c >= min_count) {
                let mut cond = Tree::new(item);
                for (path, c) in &paths {
                    let kept: Vec<u32> = path
                        .iter()
                        .copied()
                        .filter(|&i| cond_counts[i as usize] >= min_count)
                        .collect();
                    if !kept.is_empty() {
                        cond.insert(&kept, *c);
                    }
                }
                mine(&cond, suffix, (min_count, max_len, limit), out);
            }
        }
        suffix.pop();
    }
}

/// Every itemset (up to `max_len` items) contained in at least `min_count` transactions.
/// `transactions` hold item ids `0..n_items`; duplicates within a transaction count once.
pub fn frequent_itemsets(
    transactions: &[Vec<u32>],
    n_items: usize,
    min_count: u64,
    max_len: usize,
) -> Itemsets {
    frequent_itemsets_upto(transactions, n_items, min_count, max_len, MAX_ITEMSETS)
}

/// [`frequent_itemsets`], stopping at `limit` itemsets.
fn frequent_itemsets_upto(
    transactions: &[Vec<u32>],
    n_items: usize,
    min_count: u64,
    max_len: usize,
    limit: usize,
) -> Itemsets {
    let min_count = min_count.max(1);
    let mut counts = vec![0u64; n_items];
    let mut dedup: Vec<Vec<u32>> = Vec::with_capacity(transactions.len());
    for t in transactions {
        let mut t = t.clone();
        t.sort_unstable();
        t.dedup();
        for &i in &t {
            counts[i as usize] += 1;
        }
        dedup.push(t);
    }
    // Rank frequent items by count descending (ties by id), as FP-growth orders its paths.
    let mut order: Vec<u32> = (0..n_items as u32)
        .filter(|&i| counts[i as usize] >= min_count)
        .collect();
    order.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
    let mut rank = vec![u32::MAX; n_items];
    for (r, &i) in order.iter().enumerate() {
        rank[i as usize] = r as u32;
    }
    let mut tree = Tree::new(order.len());
    for t in &dedup {
        let mut path: Vec<u32> = t
            .iter()
            .map(|&i| rank[i as usize])
            .filter(|&r| r != u32::MAX)
            .collect();
        path.sort_unstable();
        if !path.is_empty() {
            tree.insert(&path, 1);
        }
    }
    let mut ranked = HashMap::new();
    if max_len > 0 {
        mine(
            &tree,
            &mut Vec::new(),
            (min_count, max_len, limit),
            &mut ranked,
        );
    }
    let counts: HashMap<Vec<u32>, u64> = ranked
        .into_iter()
        .map(|(k, c)| {
            let mut ids: Vec<u32> = k.iter().map(|&r| order[r as usize]).collect();
            ids.sort_unstable();
            (ids, c)
        })
        .collect();
    Itemsets {
        transactions: transactions.len() as u64,
        complete: counts.len() <= limit,
        counts,
    }
}

/// Rules with one consequent from frequent itemsets: support ≥ `min_support` and confidence
/// ≥ `min_confidence`, both exact; sorted by lift descending, then count descending, then
/// antecedent and consequent ids.
pub fn rules(sets: &Itemsets, min_support: Fraction, min_confidence: Fraction) -> Vec<Rule> {
    let n = sets.transactions;
    let mut out = Vec::new();
    for (items, &count) in &sets.counts {
        if items.len() < 2 || !min_support.met_by(count, n) {
            continue;
        }
        for (j, &consequent) in items.iter().enumerate() {
            let antecedent: Vec<u32> = items
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != j)
                .map(|(_, &x)| x)
                .collect();
            // Every subset of a frequent itemset is frequent, so both are present.
            let (Some(&a), Some(&c)) = (
                sets.counts.get(&antecedent),
                sets.counts.get(&vec![consequent]),
            ) else {
                continue;
            };
            if !min_confidence.met_by(count, a) {
                continue;
            }
            let nf = n as f64;
            out.push(Rule {
                antecedent,
                consequent,
                count,
                antecedent_count: a,
                consequent_count: c,
                support: count as f64 / nf,
                confidence: count as f64 / a as f64,
                lift: count as f64 * nf / (a as f64 * c as f64),
            });
        }
    }
    out.sort_by(|x, y| {
        y.lift
            .total_cmp(&x.lift)
            .then(y.count.cmp(&x.count))
            .then_with(|| x.antecedent.cmp(&y.antecedent))
            .then(x.consequent.cmp(&y.consequent))
    });
    out
}

/// Named transactions → item ids (ids in first-seen order) and the id → name table.
pub fn encode<S: AsRef<str>>(transactions: &[Vec<S>]) -> (Vec<Vec<u32>>, Vec<String>) {
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut names = Vec::new();
    let tx = transactions
        .iter()
        .map(|t| {
            t.iter()
                .map(|s| {
                    let s = s.as_ref();
                    *ids.entry(s.to_owned()).or_insert_with(|| {
                        names.push(s.to_owned());
                        (names.len() - 1) as u32
                    })
                })
                .collect()
        })
        .collect();
    (tx, names)
}

/// The parameters of `quire analyze basket`.
#[derive(Clone, Copy, Debug)]
pub struct BasketParams {
    pub min_support: Fraction,
    pub min_confidence: Fraction,
    /// Largest itemset (antecedent + consequent); `usize::MAX` = no limit.
    pub max_len: usize,
}

impl BasketParams {
    /// What the HTML report uses: support ≥ 0.001, confidence ≥ 0.2, at most 4 books.
    pub fn report_default() -> Self {
        BasketParams {
            min_support: Fraction { num: 1, den: 1000 },
            min_confidence: Fraction { num: 2, den: 10 },
            max_len: 4,
        }
    }
}

/// The analysis over named transactions (the lake side and the published fixtures share it).
pub fn analyze<S: AsRef<str>>(transactions: &[Vec<S>], p: &BasketParams) -> Result<AnalysisResult> {
    analyze_upto(transactions, p, MAX_ITEMSETS)
}

/// [`analyze`], refusing past `limit` frequent itemsets.
fn analyze_upto<S: AsRef<str>>(
    transactions: &[Vec<S>],
    p: &BasketParams,
    limit: usize,
) -> Result<AnalysisResult> {
    if p.min_support.num == 0 {
        return Err(Error::Invalid(
            "--min-support: must be above 0 (every itemset would be frequent)".into(),
        ));
    }
    let (tx, names) = encode(transactions);
    let n = tx.len() as u64;
    let started = std::time::Instant::now();
    let sets = frequent_itemsets_upto(
        &tx,
        names.len(),
        p.min_support.min_count(n),
        p.max_len,
        limit,
    );
    // An itemset of k books yields up to k rules: the rules are bounded as the itemsets are.
    let candidate_rules: usize = sets
        .counts
        .keys()
        .filter(|k| k.len() > 1)
        .map(Vec::len)
        .sum();
    if !sets.complete || candidate_rules > limit {
        return Err(Error::Invalid(format!(
            "more than {limit} frequent itemsets or candidate rules at --min-support {} over \
             {n} transactions (each subset of a large order is frequent at so low a support): \
             raise --min-support or cap the rule size with --max-len",
            p.min_support.as_f64()
        )));
    }
    let rules = rules(&sets, p.min_support, p.min_confidence);
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        itemsets = sets.counts.len(),
        rules = rules.len(),
        "fp-growth and rules"
    );
    let name = |i: u32| names[i as usize].clone();
    let mut r = AnalysisResult::new("basket", "Frequently bought together (FP-growth)");
    r.fact("transactions", n);
    r.fact("min_support", p.min_support.as_f64());
    r.fact("min_confidence", p.min_confidence.as_f64());
    r.fact("frequent_itemsets", sets.counts.len() as u64);
    r.fact("rule_count", rules.len() as u64);
    r.tables.push(
        Table::new("rules", "Rules (one consequent), by lift")
            .text_list(
                "antecedent",
                rules
                    .iter()
                    .map(|x| {
                        let mut a: Vec<String> = x.antecedent.iter().map(|&i| name(i)).collect();
                        a.sort();
                        a
                    })
                    .collect(),
            )
            .text_list(
                "consequent",
                rules.iter().map(|x| vec![name(x.consequent)]).collect(),
            )
            .int("count", rules.iter().map(|x| x.count as i64))
            .float("support", rules.iter().map(|x| x.support), 5)
            .float("confidence", rules.iter().map(|x| x.confidence), 4)
            .float("lift", rules.iter().map(|x| x.lift), 3),
    );
    let top: Vec<&Rule> = rules.iter().take(15).collect();
    if !top.is_empty() {
        r.charts.push(Chart {
            name: "top_rules".into(),
            title: "Top rules by lift".into(),
            x_label: "rule".into(),
            y_label: "lift".into(),
            kind: ChartKind::Bars {
                categories: top
                    .iter()
                    .map(|x| {
                        let a: Vec<String> = x.antecedent.iter().map(|&i| name(i)).collect();
                        format!("{}→{}", a.join("+"), name(x.consequent))
                    })
                    .collect(),
                series: vec![BarSeries {
                    name: "lift".into(),
                    values: top.iter().map(|x| x.lift).collect(),
                    ci: None,
                }],
            },
        });
    }
    r.note(
        "support = count / transactions; confidence = count / antecedent count; lift = confidence / consequent support; thresholds compared exactly as fractions of counts",
    );
    if n < 100 {
        r.warn(format!(
            "only {n} transactions: rules are anecdotes, not patterns"
        ));
    }
    Ok(r)
}

/// The lake side: each order's distinct `book_id`s in the range.
pub fn transactions(ds: &Dataset) -> Result<Vec<Vec<String>>> {
    let df = ds
        .items()?
        .lazy()
        .group_by([col("order_id")])
        .agg([col("book_id").unique().sort(Default::default())])
        .sort(["order_id"], Default::default())
        .collect()?;
    let lists = df.column("book_id")?.list()?.clone();
    let mut out = Vec::with_capacity(lists.len());
    for s in lists.amortized_iter().flatten() {
        let s = s.as_ref();
        out.push(s.str()?.iter().flatten().map(str::to_owned).collect());
    }
    Ok(out)
}

/// Reads transactions in the basket CSV format (one transaction per line, items separated by
/// commas, no header, no quoting; the format of `data/groceries/groceries.csv`). Items are
/// kept as written (no trimming); empty lines are skipped.
pub fn read_transactions(path: &std::path::Path) -> Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect())
}

/// Writes transactions in the format [`read_transactions`] reads; refuses items containing a
/// comma or a line break, which the format cannot hold.
pub fn write_transactions(path: &std::path::Path, tx: &[Vec<String>]) -> Result<()> {
    let mut out = String::new();
    for (i, t) in tx.iter().enumerate() {
        if let Some(bad) = t.iter().find(|x| x.contains([',', '\n', '\r'])) {
            return Err(Error::Invalid(format!(
                "transaction {i}: item {bad:?} contains a comma or a line break"
            )));
        }
        out.push_str(&t.join(","));
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|source| Error::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    })
}

pub fn run(ds: &Dataset, p: &BasketParams) -> Result<AnalysisResult> {
    let tx = transactions(ds)?;
    if tx.is_empty() {
        return Err(Error::NoAnswer("no orders in the range".into()));
    }
    analyze(&tx, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Fraction {
        Fraction::parse(s, "t").unwrap()
    }

    #[test]
    fn thresholds_are_exact_fractions() {
        assert_eq!(f("0.8"), Fraction { num: 8, den: 10 });
        assert!(f("0.8").met_by(8, 10));
        assert!(!f("0.8").met_by(7, 10));
        assert!(f("0.001").met_by(10, 9835) && !f("0.001").met_by(9, 9835));
        assert_eq!(f("0.001").min_count(9835), 10);
        assert_eq!(f(".5"), Fraction { num: 5, den: 10 });
        assert_eq!(f("1"), Fraction { num: 1, den: 1 });
        for bad in ["", ".", "1.5", "-0.1", "1e-3", "abc", "0.1.2"] {
            assert!(Fraction::parse(bad, "--min-support").is_err(), "{bad}");
        }
    }

    /// Han, Pei & Yin's example database (transactions of the FP-growth paper, min count 3).
    #[test]
    fn fp_growth_matches_brute_force_on_the_paper_example() {
        let db: Vec<Vec<&str>> = vec![
            vec!["f", "a", "c", "d", "g", "i", "m", "p"],
            vec!["a", "b", "c", "f", "l", "m", "o"],
            vec!["b", "f", "h", "j", "o"],
            vec!["b", "c", "k", "s", "p"],
            vec!["a", "f", "c", "e", "l", "p", "m", "n"],
        ];
        let (tx, names) = encode(&db);
        let sets = frequent_itemsets(&tx, names.len(), 3, usize::MAX);
        // Brute force over all subsets of the frequent single items.
        let n = names.len();
        let mut expected = HashMap::new();
        for mask in 1u32..(1 << n) {
            let items: Vec<u32> = (0..n as u32).filter(|i| mask & (1 << i) != 0).collect();
            let c = tx
                .iter()
                .filter(|t| items.iter().all(|i| t.contains(i)))
                .count() as u64;
            if c >= 3 {
                expected.insert(items, c);
            }
        }
        assert_eq!(sets.counts, expected);
        // The paper's answer includes {f,c,a,m} with count 3 (f, c, a, m, p frequent).
        let id = |s: &str| names.iter().position(|x| x == s).unwrap() as u32;
        let mut fcam = vec![id("f"), id("c"), id("a"), id("m")];
        fcam.sort_unstable();
        assert_eq!(sets.counts.get(&fcam), Some(&3));
        assert_eq!(expected.len(), 18);
    }

    #[test]
    fn transactions_round_trip_and_bad_items_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let tx = vec![
            vec!["a".to_owned(), "cream cheese ".to_owned()],
            vec!["b".to_owned()],
        ];
        write_transactions(&path, &tx).unwrap();
        assert_eq!(read_transactions(&path).unwrap(), tx);
        let bad = vec![vec!["x,y".to_owned()]];
        assert!(
            write_transactions(&path, &bad)
                .unwrap_err()
                .to_string()
                .contains("transaction 0")
        );
    }

    #[test]
    fn rules_by_hand() {
        // 4 transactions: {a,b} ×2, {a} ×1, {b,c} ×1.
        let db = vec![vec!["a", "b"], vec!["a", "b"], vec!["a"], vec!["b", "c"]];
        let p = BasketParams {
            min_support: f("0.5"),
            min_confidence: f("0.6"),
            max_len: usize::MAX,
        };
        let r = analyze(&db, &p).unwrap();
        let j = r.to_json();
        assert_eq!(j["transactions"], 4);
        let rules = j["rules"].as_array().unwrap();
        // a→b: 2/3 = .667 ≥ .6; b→a: 2/3 too; lift = (2/3)/(3/4) = 0.889 each.
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["count"], 2);
        assert!((rules[0]["lift"].as_f64().unwrap() - 8.0 / 9.0).abs() < 1e-12);
        assert!((rules[0]["support"].as_f64().unwrap() - 0.5).abs() < 1e-12);
        // Confidence exactly at the threshold (2/3 vs 0.6667 fails, vs 0.666 passes).
        let tight = BasketParams {
            min_confidence: f("0.6667"),
            ..p
        };
        assert_eq!(
            analyze(&db, &tight).unwrap().table("rules").unwrap().rows(),
            0
        );
        let zero = BasketParams {
            min_support: f("0"),
            ..p
        };
        assert!(analyze(&db, &zero).is_err());
        // One order of 12 books at a support of one order: 4,095 frequent itemsets; past the
        // limit the analysis refuses, naming the way out, instead of mining them all.
        let big = vec![(0..12).map(|i| format!("bk_{i}")).collect::<Vec<_>>()];
        let p = BasketParams {
            min_support: f("0.001"),
            ..p
        };
        // 4,095 itemsets, 12·2^11 − 12 = 24,564 candidate rules (k per itemset of k ≥ 2).
        assert!(analyze_upto(&big, &p, 24_564).is_ok());
        for limit in [24_563, 4_095, 1_000] {
            let e = analyze_upto(&big, &p, limit).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "more than {limit} frequent itemsets or candidate rules"
                )) && e.contains("--max-len"),
                "{e}"
            );
        }
        // Exactly the limit of itemsets is complete; one fewer is not.
        let tx: Vec<Vec<u32>> = vec![(0..12).collect()];
        assert!(frequent_itemsets_upto(&tx, 12, 1, usize::MAX, 4_095).complete);
        assert!(!frequent_itemsets_upto(&tx, 12, 1, usize::MAX, 4_094).complete);
    }
}
