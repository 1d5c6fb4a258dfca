//! The estimators against published reference results.

use std::path::PathBuf;

use quire_analytics::basket::{self, BasketParams, Fraction};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(rel)
}

fn groceries() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(data("groceries/groceries.csv")).unwrap();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn params(s: &str, c: &str) -> BasketParams {
    BasketParams {
        min_support: Fraction::parse(s, "s").unwrap(),
        min_confidence: Fraction::parse(c, "c").unwrap(),
        max_len: usize::MAX,
    }
}

/// arules: supp 0.001, conf 0.8 → 410 rules (39 of them at exactly 0.8), lengths 3:29 4:229
/// 5:140 6:12, top rule {liquor, red/blush wine} ⇒ {bottled beer}; and the stored rule list.
#[test]
fn groceries_reproduces_arules_410_rules() {
    let tx = groceries();
    assert_eq!(tx.len(), 9835);
    let r = basket::analyze(&tx, &params("0.001", "0.8")).unwrap();
    let rules = r.table("rules").unwrap();
    assert_eq!(rules.rows(), 410);
    let j = r.to_json();
    let rows = j["rules"].as_array().unwrap();
    let mut by_len = std::collections::BTreeMap::new();
    for row in rows {
        *by_len
            .entry(row["antecedent"].as_array().unwrap().len() + 1)
            .or_insert(0) += 1;
    }
    assert_eq!(
        by_len.into_iter().collect::<Vec<_>>(),
        vec![(3, 29), (4, 229), (5, 140), (6, 12)]
    );
    let top = &rows[0];
    assert_eq!(
        top["antecedent"],
        serde_json::json!(["liquor", "red/blush wine"])
    );
    assert_eq!(top["consequent"], serde_json::json!(["bottled beer"]));
    assert!((top["lift"].as_f64().unwrap() - 11.23527).abs() < 1e-5);
    assert!((top["support"].as_f64().unwrap() - 0.001931876).abs() < 1e-9);
    // Every stored reference rule, with its counts.
    let reference = std::fs::read_to_string(data(
        "groceries/reference/groceries_rules_supp0.001_conf0.8.csv",
    ))
    .unwrap();
    let mut rdr = csv_rows(&reference);
    let header = rdr.remove(0);
    assert_eq!(header[0], "lhs");
    let mut expected: Vec<(String, String, i64)> = rdr
        .into_iter()
        .map(|f| (f[0].clone(), f[1].clone(), f[2].parse().unwrap()))
        .collect();
    let mut got: Vec<(String, String, i64)> = rows
        .iter()
        .map(|row| {
            let lhs: Vec<&str> = row["antecedent"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            (
                lhs.join(" & "),
                row["consequent"][0].as_str().unwrap().to_owned(),
                row["count"].as_i64().unwrap(),
            )
        })
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
}

/// A minimal CSV reader for the reference file (quoted fields may hold commas).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut fields = Vec::new();
            let mut cur = String::new();
            let mut quoted = false;
            let mut chars = l.chars().peekable();
            while let Some(ch) = chars.next() {
                match ch {
                    '"' if quoted && chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                    c => cur.push(c),
                }
            }
            fields.push(cur);
            fields
        })
        .collect()
}

/// Lantz, "Machine Learning with R": support 0.006, confidence 0.25, minlen 2 → 463 rules
/// (2:150, 3:297, 4:16); {pot plants} ⇒ {whole milk} has count 68, confidence 0.4.
#[test]
fn groceries_reproduces_the_lantz_463_rules() {
    let r = basket::analyze(&groceries(), &params("0.006", "0.25")).unwrap();
    let j = r.to_json();
    let rows = j["rules"].as_array().unwrap();
    assert_eq!(rows.len(), 463);
    let mut by_len = std::collections::BTreeMap::new();
    for row in rows {
        *by_len
            .entry(row["antecedent"].as_array().unwrap().len() + 1)
            .or_insert(0) += 1;
    }
    assert_eq!(
        by_len.into_iter().collect::<Vec<_>>(),
        vec![(2, 150), (3, 297), (4, 16)]
    );
    let plants = rows
        .iter()
        .find(|x| {
            x["antecedent"] == serde_json::json!(["pot plants"])
                && x["consequent"] == serde_json::json!(["whole milk"])
        })
        .unwrap();
    assert_eq!(plants["count"], 68);
    assert!((plants["confidence"].as_f64().unwrap() - 0.4).abs() < 1e-12);
    assert!((plants["lift"].as_f64().unwrap() - 1.565460).abs() < 1e-6);
}

/// arules target "frequent itemsets", supp 0.001, minlen 2, maxlen 4 → 12,949 itemsets.
#[test]
fn groceries_frequent_itemsets_count() {
    let (tx, names) = basket::encode(&groceries());
    let min = Fraction::parse("0.001", "s")
        .unwrap()
        .min_count(tx.len() as u64);
    assert_eq!(min, 10);
    let sets = basket::frequent_itemsets(&tx, names.len(), min, 4);
    let n = sets.counts.keys().filter(|k| k.len() >= 2).count();
    assert_eq!(n, 12_949);
    assert_eq!(sets.counts.keys().filter(|k| k.len() == 1).count(), 157);
}

fn cdnow() -> Vec<quire_analytics::clv::Rfm> {
    let text = std::fs::read_to_string(data("cdnow/cdnow_customers_summary.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("ID,frequency,recency,T"));
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            quire_analytics::clv::Rfm {
                x: f[1],
                t_x: f[2],
                t_cap: f[3],
            }
        })
        .collect()
}

/// Fader, Hardie & Lee (2005) on CDNOW: r 0.2426, α 4.4135, a 0.7929, b 2.4258, LL −9582.43;
/// the customer (2, 30.43, 38.86) expects 1.226 purchases in 39 weeks, P(alive) 0.727.
#[test]
fn bgnbd_reproduces_the_cdnow_fit() {
    let data = cdnow();
    assert_eq!(data.len(), 2357);
    let fit = quire_analytics::clv::fit_bgnbd(&data).unwrap();
    let close = |got: f64, want: f64| (got - want).abs() < 5e-5;
    assert!(close(fit.r, 0.2426), "{fit:?}");
    assert!(close(fit.alpha, 4.4135), "{fit:?}");
    assert!(close(fit.a, 0.7929), "{fit:?}");
    assert!(close(fit.b, 2.4258), "{fit:?}");
    assert!((fit.log_likelihood - -9582.43).abs() < 0.005, "{fit:?}");
    let c = quire_analytics::clv::Rfm {
        x: 2.0,
        t_x: 30.43,
        t_cap: 38.86,
    };
    assert!((fit.expected_purchases(&c, 39.0) - 1.226).abs() < 5e-4);
    assert!((fit.p_alive(&c) - 0.727).abs() < 5e-4);
}
