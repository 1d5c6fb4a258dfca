//! The shared output layer: every analysis returns an [`AnalysisResult`] (named tables of typed
//! columns, charts, scalar summary figures, notes and warnings), and this module prints it for
//! people, turns it into one JSON document, or writes it as Parquet tables and SVG charts.
//!
//! JSON shape (stable): `{"analysis": name, <summary keys>..., <table name>: [row objects]...,
//! "charts": [chart names], "notes": [..], "warnings": [..]}`. A row object maps each column name
//! to its value (`null` when missing, an array for list columns).

use std::fs::File;
use std::path::{Path, PathBuf};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use polars::prelude::*;
use serde_json::{Map, Value};

use crate::chart::Chart;
use crate::{Error, Result};

/// How a numeric column is shown in a human table (JSON and Parquet keep full precision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    /// Integers as they are, floats with this many decimals.
    Num(usize),
    /// A fraction shown as a percentage with this many decimals.
    Pct(usize),
}

/// The values of one column.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
    /// A list of strings per row (e.g. the items of a rule's antecedent).
    TextList(Vec<Vec<String>>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Int(v) => v.len(),
            Values::Float(v) => v.len(),
            Values::Text(v) => v.len(),
            Values::Bool(v) => v.len(),
            Values::TextList(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn json(&self, i: usize) -> Value {
        match self {
            Values::Int(v) => v[i].map_or(Value::Null, Value::from),
            Values::Float(v) => v[i]
                .filter(|x| x.is_finite())
                .map_or(Value::Null, Value::from),
            Values::Text(v) => v[i].clone().map_or(Value::Null, Value::from),
            Values::Bool(v) => v[i].map_or(Value::Null, Value::from),
            Values::TextList(v) => Value::from(v[i].clone()),
        }
    }

    fn text(&self, i: usize, fmt: Fmt) -> String {
        let dash = || "-".to_owned();
        match self {
            Values::Int(v) => v[i].map_or_else(dash, |x| x.to_string()),
            Values::Float(v) => v[i]
                .filter(|x| x.is_finite())
                .map_or_else(dash, |x| match fmt {
                    Fmt::Num(d) => format!("{x:.d$}"),
                    Fmt::Pct(d) => format!("{:.d$}%", x * 100.0),
                }),
            Values::Text(v) => v[i].clone().unwrap_or_else(dash),
            Values::Bool(v) => v[i].map_or_else(dash, |x| x.to_string()),
            Values::TextList(v) => v[i].join(", "),
        }
    }

    fn series(&self, name: &str) -> Series {
        let name = PlSmallStr::from(name);
        match self {
            Values::Int(v) => Series::new(name, v.as_slice()),
            Values::Float(v) => Series::new(name, v.as_slice()),
            Values::Text(v) => Series::new(name, v.as_slice()),
            Values::Bool(v) => Series::new(name, v.as_slice()),
            Values::TextList(v) => {
                let mut list: ListChunked = v
                    .iter()
                    .map(|items| Some(Series::new(PlSmallStr::EMPTY, items.as_slice())))
                    .collect();
                list.rename(name);
                list.into_series()
            }
        }
    }
}

/// One column: a name, its values and how people see them.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
    pub fmt: Fmt,
}

/// A named table of typed columns (all of the same length).
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Key in the JSON document and Parquet file stem: lowercase, `[a-z0-9_]`.
    pub name: String,
    /// A line for people.
    pub title: String,
    pub columns: Vec<Column>,
}

impl Table {
    pub fn new(name: &str, title: impl Into<String>) -> Self {
        Table {
            name: name.to_owned(),
            title: title.into(),
            columns: Vec::new(),
        }
    }

    fn push(mut self, name: &str, values: Values, fmt: Fmt) -> Self {
        self.columns.push(Column {
            name: name.to_owned(),
            values,
            fmt,
        });
        self
    }

    pub fn int(self, name: &str, v: impl IntoIterator<Item = i64>) -> Self {
        self.push(
            name,
            Values::Int(v.into_iter().map(Some).collect()),
            Fmt::Num(0),
        )
    }

    pub fn opt_int(self, name: &str, v: Vec<Option<i64>>) -> Self {
        self.push(name, Values::Int(v), Fmt::Num(0))
    }

    /// Floats shown with `decimals` decimals; NaN and infinities count as missing.
    pub fn float(self, name: &str, v: impl IntoIterator<Item = f64>, decimals: usize) -> Self {
        let v = v.into_iter().map(|x| x.is_finite().then_some(x)).collect();
        self.push(name, Values::Float(v), Fmt::Num(decimals))
    }

    pub fn opt_float(self, name: &str, v: Vec<Option<f64>>, decimals: usize) -> Self {
        self.push(name, Values::Float(v), Fmt::Num(decimals))
    }

    /// Fractions shown as percentages.
    pub fn pct(self, name: &str, v: impl IntoIterator<Item = f64>) -> Self {
        let v = v.into_iter().map(|x| x.is_finite().then_some(x)).collect();
        self.push(name, Values::Float(v), Fmt::Pct(1))
    }

    pub fn opt_pct(self, name: &str, v: Vec<Option<f64>>) -> Self {
        self.push(name, Values::Float(v), Fmt::Pct(1))
    }

    pub fn text<S: Into<String>>(self, name: &str, v: impl IntoIterator<Item = S>) -> Self {
        let v = v.into_iter().map(|s| Some(s.into())).collect();
        self.push(name, Values::Text(v), Fmt::Num(0))
    }

    pub fn bool(self, name: &str, v: impl IntoIterator<Item = bool>) -> Self {
        self.push(
            name,
            Values::Bool(v.into_iter().map(Some).collect()),
            Fmt::Num(0),
        )
    }

    pub fn text_list(self, name: &str, v: Vec<Vec<String>>) -> Self {
        self.push(name, Values::TextList(v), Fmt::Num(0))
    }

    /// Number of rows (of the first column; [`Table::check`] verifies the others).
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Values> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.values)
    }

    /// Every column has the same length and a distinct name.
    pub fn check(&self) -> Result<()> {
        let n = self.rows();
        for (i, c) in self.columns.iter().enumerate() {
            if c.values.len() != n {
                return Err(Error::Internal(format!(
                    "table {}: column {} has {} rows, expected {n}",
                    self.name,
                    c.name,
                    c.values.len()
                )));
            }
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(Error::Internal(format!(
                    "table {}: column {} appears twice",
                    self.name, c.name
                )));
            }
        }
        Ok(())
    }

    /// The rows as JSON objects.
    pub fn to_json(&self) -> Value {
        Value::Array(
            (0..self.rows())
                .map(|i| {
                    Value::Object(
                        self.columns
                            .iter()
                            .map(|c| (c.name.clone(), c.values.json(i)))
                            .collect(),
                    )
                })
                .collect(),
        )
    }

    /// The table as a Polars frame (list columns become `List(String)`).
    pub fn to_frame(&self) -> Result<DataFrame> {
        self.check()?;
        let cols: Vec<polars::prelude::Column> = self
            .columns
            .iter()
            .map(|c| c.values.series(&c.name).into_column())
            .collect();
        Ok(DataFrame::new_infer_height(cols)?)
    }

    /// A human table of at most `max_rows` rows.
    pub fn to_text(&self, max_rows: usize) -> String {
        let mut t = comfy_table::Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(self.columns.iter().map(|c| c.name.as_str()));
        for i in 0..self.rows().min(max_rows) {
            t.add_row(self.columns.iter().map(|c| c.values.text(i, c.fmt)));
        }
        let mut s = format!("{}\n{t}", self.title);
        if self.rows() > max_rows {
            s.push_str(&format!(
                "\n… {} more rows (all of them with --json or --out)",
                self.rows() - max_rows
            ));
        }
        s
    }

    /// The cell text of row `i` (for the HTML report).
    pub(crate) fn cells(&self, i: usize) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| c.values.text(i, c.fmt))
            .collect()
    }
}

/// What one analysis found.
#[derive(Clone, Debug, Default)]
pub struct AnalysisResult {
    /// The subcommand name (`basket`, `segments`, …).
    pub name: String,
    /// A heading for people.
    pub title: String,
    /// Scalar figures and parameters, in insertion order (`transactions`, `seed`, `k`, …).
    pub summary: Vec<(String, Value)>,
    pub tables: Vec<Table>,
    pub charts: Vec<Chart>,
    /// How to read the result (method, definitions).
    pub notes: Vec<String>,
    /// What may make the result untrustworthy (small samples, failed checks).
    pub warnings: Vec<String>,
}

impl AnalysisResult {
    pub fn new(name: &str, title: impl Into<String>) -> Self {
        AnalysisResult {
            name: name.to_owned(),
            title: title.into(),
            ..Default::default()
        }
    }

    /// Adds a summary figure.
    pub fn fact(&mut self, key: &str, v: impl Into<Value>) {
        self.summary.push((key.to_owned(), v.into()));
    }

    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    pub fn warn(&mut self, s: impl Into<String>) {
        self.warnings.push(s.into());
    }

    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The summary figure called `key`.
    pub fn summary_value(&self, key: &str) -> Option<&Value> {
        self.summary.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Table shapes and key uniqueness (summary keys, table names and the fixed keys never
    /// collide, so the JSON document loses nothing).
    pub fn check(&self) -> Result<()> {
        let mut keys: Vec<&str> = vec!["analysis", "charts", "notes", "warnings"];
        keys.extend(self.summary.iter().map(|(k, _)| k.as_str()));
        keys.extend(self.tables.iter().map(|t| t.name.as_str()));
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Internal(format!(
                "analysis {}: key {} used twice",
                self.name, w[0]
            )));
        }
        for t in &self.tables {
            t.check()?;
        }
        let mut charts: Vec<&str> = self.charts.iter().map(|c| c.name.as_str()).collect();
        charts.sort_unstable();
        if let Some(w) = charts.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Internal(format!(
                "analysis {}: chart {} twice",
                self.name, w[0]
            )));
        }
        Ok(())
    }

    /// The one JSON document of `--json`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("analysis".into(), Value::from(self.name.clone()));
        for (k, v) in &self.summary {
            m.insert(k.clone(), v.clone());
        }
        for t in &self.tables {
            m.insert(t.name.clone(), t.to_json());
        }
        m.insert(
            "charts".into(),
            Value::from(
                self.charts
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>(),
            ),
        );
        m.insert("notes".into(), Value::from(self.notes.clone()));
        m.insert("warnings".into(), Value::from(self.warnings.clone()));
        Value::Object(m)
    }

    /// The human rendering: title, summary lines, tables (at most `max_rows` rows each),
    /// notes and warnings.
    pub fn to_text(&self, max_rows: usize) -> String {
        let mut s = format!("{}\n", self.title);
        for (k, v) in &self.summary {
            s.push_str(&format!("  {k}: {}\n", scalar_text(v)));
        }
        for t in &self.tables {
            s.push('\n');
            s.push_str(&t.to_text(max_rows));
            s.push('\n');
        }
        for n in &self.notes {
            s.push_str(&format!("\nnote: {n}"));
        }
        for w in &self.warnings {
            s.push_str(&format!("\nwarning: {w}"));
        }
        s
    }

    /// Writes `DIR/<name>.<table>.parquet` per table and `DIR/<name>.<chart>.svg` per chart
    /// (DIR is created if missing); returns the paths written.
    pub fn write_out(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })?;
        let mut written = Vec::new();
        for t in &self.tables {
            let path = dir.join(format!("{}.{}.parquet", self.name, t.name));
            let mut df = t.to_frame()?;
            let file = File::create(&path).map_err(|source| Error::Io {
                action: "creating",
                path: path.clone(),
                source,
            })?;
            ParquetWriter::new(file).finish(&mut df)?;
            written.push(path);
        }
        for c in &self.charts {
            let path = dir.join(format!("{}.{}.svg", self.name, c.name));
            let svg = c.to_svg()?;
            std::fs::write(&path, svg).map_err(|source| Error::Io {
                action: "writing",
                path: path.clone(),
                source,
            })?;
            written.push(path);
        }
        Ok(written)
    }
}

/// A summary value as one line of text.
pub(crate) fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("{x:.4}"),
            _ => n.to_string(),
        },
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AnalysisResult {
        let mut r = AnalysisResult::new("demo", "Demo");
        r.fact("n", 3);
        r.tables.push(
            Table::new("rows", "Rows")
                .text("k", ["a", "b"])
                .float("x", [0.5, f64::NAN], 2)
                .text_list("l", vec![vec!["p".into(), "q".into()], vec![]]),
        );
        r
    }

    #[test]
    fn json_has_summary_tables_and_fixed_keys() {
        let j = sample().to_json();
        assert_eq!(j["analysis"], "demo");
        assert_eq!(j["n"], 3);
        assert_eq!(j["rows"][0]["l"], serde_json::json!(["p", "q"]));
        assert_eq!(j["rows"][1]["x"], Value::Null);
        assert_eq!(j["notes"], serde_json::json!([]));
    }

    #[test]
    fn colliding_keys_and_ragged_tables_are_refused() {
        let mut r = sample();
        r.fact("rows", 1);
        assert!(r.check().is_err());
        let mut r = sample();
        r.tables
            .push(Table::new("t", "T").int("a", [1, 2]).int("b", [1]));
        assert!(r.check().is_err());
        assert!(sample().check().is_ok());
    }

    #[test]
    fn frames_keep_types_and_lists() {
        let df = sample().tables[0].to_frame().unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(
            df.column("l").unwrap().dtype(),
            &DataType::List(Box::new(DataType::String))
        );
        assert_eq!(df.column("x").unwrap().null_count(), 1);
    }

    #[test]
    fn text_formats_percentages_and_truncates() {
        let t = Table::new("t", "T").pct("p", [0.1234, 0.5, 0.25]);
        let s = t.to_text(2);
        assert!(s.contains("12.3%"), "{s}");
        assert!(s.contains("1 more rows"), "{s}");
    }
}
