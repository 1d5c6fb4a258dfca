//! Dimension tables (books, users, marketing spend): CSV or Parquet in, typed Parquet out,
//! each load replacing the table's earlier version atomically.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;

use crate::{At, Error, Lake, Result, write_parquet_atomic};

/// The warehouse's dimension tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimTable {
    Books,
    Users,
    MarketingSpend,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Float,
    Date,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Int => "an integer",
            Kind::Float => "a number",
            Kind::Date => "a date (YYYY-MM-DD)",
        }
    }
}

/// (column, type, required, minimum for numbers)
type Spec = (&'static str, Kind, bool, Option<f64>);

const TRAFFIC_SOURCES: [&str; 6] = ["organic", "paid", "social", "direct", "email", "referral"];

impl DimTable {
    pub const ALL: [DimTable; 3] = [DimTable::Books, DimTable::Users, DimTable::MarketingSpend];

    pub fn name(self) -> &'static str {
        match self {
            DimTable::Books => "books",
            DimTable::Users => "users",
            DimTable::MarketingSpend => "marketing_spend",
        }
    }

    fn key(self) -> &'static [&'static str] {
        match self {
            DimTable::Books => &["book_id"],
            DimTable::Users => &["user_id"],
            DimTable::MarketingSpend => &["date", "channel"],
        }
    }

    fn columns(self) -> &'static [Spec] {
        use Kind::*;
        match self {
            DimTable::Books => &[
                ("book_id", Str, true, None),
                ("title", Str, true, None),
                ("author", Str, true, None),
                ("genre", Str, true, None),
                ("series", Str, false, None),
                ("series_index", Int, false, Some(0.0)),
                ("price", Float, true, Some(0.0)),
                ("unit_cost", Float, true, Some(0.0)),
                ("publication_year", Int, false, None),
                ("average_rating", Float, false, Some(0.0)),
                ("ratings_count", Int, false, Some(0.0)),
            ],
            DimTable::Users => &[
                ("user_id", Str, true, None),
                ("signup_date", Date, true, None),
                ("country", Str, false, None),
            ],
            DimTable::MarketingSpend => &[
                ("date", Date, true, None),
                ("channel", Str, true, None),
                ("spend", Float, true, Some(0.0)),
            ],
        }
    }
}

/// Rows loaded per table (`quire dims load --json`); `None`: the table was not given. The JSON
/// has all three (cli.md), 0 for a table not loaded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DimLoadReport {
    #[serde(serialize_with = "rows_loaded")]
    pub books: Option<u64>,
    #[serde(serialize_with = "rows_loaded")]
    pub users: Option<u64>,
    #[serde(serialize_with = "rows_loaded")]
    pub marketing_spend: Option<u64>,
}

fn rows_loaded<S: serde::Serializer>(
    rows: &Option<u64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(rows.unwrap_or(0))
}

impl Lake {
    pub fn dim_path(&self, table: DimTable) -> PathBuf {
        self.warehouse_dir()
            .join("dims")
            .join(format!("{}.parquet", table.name()))
    }

    /// The loaded dimension table, if any.
    pub fn scan_dim(&self, table: DimTable) -> Result<Option<LazyFrame>> {
        let path = self.dim_path(table);
        if !path.exists() {
            return Ok(None);
        }
        let p = PlRefPath::try_from_path(&path).at(|| path.display().to_string())?;
        LazyFrame::scan_parquet(p, ScanArgsParquet::default())
            .map(Some)
            .at(|| format!("scanning {}", path.display()))
    }

    /// Validates `file` (CSV with a header, or Parquet) as `table` and replaces the table.
    /// Returns the rows loaded. Nothing is replaced when any row is invalid.
    pub fn load_dim(&self, table: DimTable, file: &Path) -> Result<u64> {
        self.replace_dim(CheckedDim::read(table, file)?)
    }

    /// Replaces a table with a file already read and validated; returns the rows loaded.
    pub fn replace_dim(&self, dim: CheckedDim) -> Result<u64> {
        let CheckedDim { table, mut df } = dim;
        let rows = df.height() as u64;
        write_parquet_atomic(&mut df, &self.dim_path(table))?;
        Ok(rows)
    }
}

/// A dimension file read, typed and validated: what a load writes. Reading every file of a
/// load before replacing any table keeps a load that fails on one file from replacing the
/// others.
#[derive(Debug)]
pub struct CheckedDim {
    table: DimTable,
    df: DataFrame,
}

impl CheckedDim {
    /// Reads `file` (CSV with a header, or Parquet) as `table`, with an error naming the file,
    /// line and column of the first bad value.
    pub fn read(table: DimTable, file: &Path) -> Result<Self> {
        Ok(Self {
            table,
            df: read_dim(table, file)?,
        })
    }
}

fn dim_error(file: &Path, message: String) -> Error {
    Error::Dim {
        path: file.to_owned(),
        message,
    }
}

fn read_raw(file: &Path) -> Result<(DataFrame, bool)> {
    let is_parquet = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let df = if is_parquet {
        let p = PlRefPath::try_from_path(file).at(|| file.display().to_string())?;
        LazyFrame::scan_parquet(p, ScanArgsParquet::default())
            .and_then(LazyFrame::collect)
            .at(|| format!("reading {}", file.display()))?
    } else {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(file.to_owned()))
            .and_then(|r| r.finish())
            .at(|| format!("reading {}", file.display()))?
    };
    Ok((df, is_parquet))
}

/// Reads and types one dimension file, with an error naming the file, line and column of
/// the first bad value.
fn read_dim(table: DimTable, file: &Path) -> Result<DataFrame> {
    let (raw, is_parquet) = read_raw(file)?;
    let present = raw.get_column_names_owned();
    for (name, _, required, _) in table.columns() {
        if *required && !present.iter().any(|c| c.as_str() == *name) {
            return Err(dim_error(
                file,
                format!(
                    "missing column {name} (a {} table needs {})",
                    table.name(),
                    table
                        .columns()
                        .iter()
                        .map(|c| c.0)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    // CSV line numbers count the header; Parquet rows are 1-based.
    let line_offset: IdxSize = if is_parquet { 1 } else { 2 };
    let schema = raw.schema().clone();
    let mut typed = Vec::new();
    let mut checks = Vec::new();
    for &(name, kind, required, min) in table.columns() {
        let stored = schema.get(name);
        let text = if stored.is_some() {
            let s = col(name).cast(DataType::String);
            when(s.clone().eq(lit("")))
                .then(lit(NULL).cast(DataType::String))
                .otherwise(s)
        } else {
            lit(NULL).cast(DataType::String)
        };
        let value = match (kind, stored) {
            // Parquet from pandas or Spark: an integer column with nulls stored as floats
            // (1999.0), a date stored as a date or a timestamp. Taken by value, not by text.
            (Kind::Int, Some(t)) if t.is_float() => {
                let v = col(name);
                when(v.clone().eq(v.clone().floor()))
                    .then(v.cast(DataType::Int64))
                    .otherwise(lit(NULL).cast(DataType::Int64))
            }
            (Kind::Date, Some(DataType::Date | DataType::Datetime(..))) => {
                col(name).cast(DataType::Date)
            }
            (Kind::Str, _) => text.clone(),
            (Kind::Int, _) => text.clone().cast(DataType::Int64),
            (Kind::Float, _) => text.clone().cast(DataType::Float64),
            // Exactly YYYY-MM-DD: the parser alone also takes 2025-2-1.
            (Kind::Date, _) => when(text.clone().str().len_bytes().eq(lit(10u32)))
                .then(text.clone().str().to_date(StrptimeOptions {
                    format: Some("%Y-%m-%d".into()),
                    strict: false,
                    exact: true,
                    cache: true,
                }))
                .otherwise(lit(NULL).cast(DataType::Date)),
        };
        typed.push(value.clone().alias(name));
        let unparsable = text.clone().is_not_null().and(value.clone().is_null());
        checks.push(unparsable.alias(format!("__parse_{name}")));
        if required {
            checks.push(text.clone().is_null().alias(format!("__missing_{name}")));
        }
        if let Some(min) = min {
            checks.push(
                value
                    .clone()
                    .cast(DataType::Float64)
                    .lt(lit(min))
                    .fill_null(false)
                    .alias(format!("__min_{name}")),
            );
        }
        if kind == Kind::Float {
            // The text "NaN" or "inf" reads as a float; neither is a price, cost or spend.
            checks.push(
                value
                    .clone()
                    .is_finite()
                    .not()
                    .fill_null(false)
                    .alias(format!("__finite_{name}")),
            );
        }
        if table == DimTable::MarketingSpend && name == "channel" {
            let allowed = Series::new("allowed".into(), TRAFFIC_SOURCES);
            checks.push(
                value
                    .clone()
                    .is_in(lit(allowed).implode(false), false)
                    .not()
                    .fill_null(false)
                    .alias("__channel_channel"),
            );
        }
        checks.push(text.alias(format!("__text_{name}")));
    }
    let mut rows = raw.lazy().with_row_index("__row", Some(line_offset));
    if !is_parquet && !present.is_empty() {
        // A line with no value at all (blank, a trailing one say, or only commas) is not a
        // row: it describes nothing to load.
        let filled: Vec<Expr> = present
            .iter()
            .map(|c| {
                col(c.clone())
                    .cast(DataType::String)
                    .neq(lit(""))
                    .fill_null(false)
            })
            .collect();
        rows = rows.filter(any_horizontal(filled).at(|| file.display().to_string())?);
    }
    let checked = rows
        .select(
            std::iter::once(col("__row"))
                .chain(typed)
                .chain(checks)
                .collect::<Vec<_>>(),
        )
        .collect()
        .at(|| format!("typing {}", file.display()))?;
    report_first_problem(table, file, &checked)?;
    check_unique(table, file, &checked)?;
    let names: Vec<&str> = table.columns().iter().map(|c| c.0).collect();
    checked
        .select(names)
        .at(|| format!("typing {}", file.display()))
}

fn report_first_problem(table: DimTable, file: &Path, df: &DataFrame) -> Result<()> {
    let ctx = || format!("checking {}", file.display());
    let rows = df.column("__row").at(ctx)?.idx().at(ctx)?.clone();
    let mut first: Option<(IdxSize, String)> = None;
    for &(name, kind, _, min) in table.columns() {
        let text = df
            .column(&format!("__text_{name}"))
            .at(ctx)?
            .str()
            .at(ctx)?
            .clone();
        let mut consider = |flag: &str, describe: &dyn Fn(Option<&str>) -> String| -> Result<()> {
            let Ok(c) = df.column(&format!("__{flag}_{name}")) else {
                return Ok(());
            };
            let mask = c.bool().at(ctx)?;
            if let Some(i) = mask.iter().position(|b| b == Some(true)) {
                let row = rows.get(i).unwrap_or_default();
                if first.as_ref().is_none_or(|(r, _)| row < *r) {
                    first = Some((row, describe(text.get(i))));
                }
            }
            Ok(())
        };
        consider("parse", &|v| {
            format!(
                "column {name}: cannot read \"{}\" as {}",
                v.unwrap_or_default(),
                kind.name()
            )
        })?;
        consider("missing", &|_| {
            format!("column {name}: a value is required")
        })?;
        consider("min", &|v| {
            format!(
                "column {name}: must be >= {}, got {}",
                min.unwrap_or_default(),
                v.unwrap_or_default()
            )
        })?;
        consider("finite", &|v| {
            format!(
                "column {name}: must be a finite number, got {}",
                v.unwrap_or_default()
            )
        })?;
        consider("channel", &|v| {
            format!(
                "column {name}: must be one of {}, got \"{}\"",
                TRAFFIC_SOURCES.join(", "),
                v.unwrap_or_default()
            )
        })?;
    }
    match first {
        Some((row, message)) => Err(dim_error(file, format!("line {row}: {message}"))),
        None => Ok(()),
    }
}

/// The first two rows sharing a key, by the line numbers of `__row` (blank lines skipped
/// keep the numbers of the lines after them).
fn check_unique(table: DimTable, file: &Path, df: &DataFrame) -> Result<()> {
    let ctx = || format!("checking {}", file.display());
    let key = table.key();
    let dup = df
        .clone()
        .lazy()
        .filter(as_struct(key.iter().map(|k| col(*k)).collect()).is_duplicated())
        .limit(2)
        .collect()
        .at(ctx)?;
    if dup.height() == 0 {
        return Ok(());
    }
    let rows = dup.column("__row").at(ctx)?.idx().at(ctx)?.clone();
    let value = key
        .iter()
        .map(|k| {
            dup.column(k)
                .ok()
                .and_then(|c| c.get(0).ok())
                .map(|v| match v {
                    AnyValue::String(s) => s.to_owned(),
                    other => other.to_string(),
                })
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(dim_error(
        file,
        format!(
            "duplicate {} {value} at lines {} and {}",
            key.join(" + "),
            rows.get(0).unwrap_or_default(),
            rows.get(1).unwrap_or_default()
        ),
    ))
}
