//! Test helpers: small event frames in the lake schema, built from readable events.

use polars::prelude::*;

/// The lake's event schema (`docs/lake.md`), from the crate that writes the lake.
pub fn lake_schema() -> Schema {
    quire_lake::events_schema()
}

/// Epoch milliseconds of an RFC 3339 timestamp.
pub fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

/// One event, with the envelope set and every other field optional.
#[derive(Clone)]
pub struct Ev {
    id: String,
    ty: String,
    ts: i64,
    user: String,
    device: String,
    source: Option<String>,
    is_test: bool,
    ingested: Option<i64>,
    book: Option<String>,
    module: Option<String>,
    results_count: Option<i64>,
    order_id: Option<String>,
    items: Vec<(String, i64, f64)>,
    total_price: Option<f64>,
    fees: Option<f64>,
    discount: Option<f64>,
    refund: Option<f64>,
    quantity: Option<i64>,
    unit_price: Option<f64>,
}

/// An event of `ty` by `user` at `ts` (RFC 3339), device `desktop`, no traffic source.
pub fn ev(id: &str, ty: &str, ts: &str, user: &str) -> Ev {
    Ev {
        id: id.into(),
        ty: ty.into(),
        ts: ms(ts),
        user: user.into(),
        device: "desktop".into(),
        source: None,
        is_test: false,
        ingested: None,
        book: None,
        module: None,
        results_count: None,
        order_id: None,
        items: Vec::new(),
        total_price: None,
        fees: None,
        discount: None,
        refund: None,
        quantity: None,
        unit_price: None,
    }
}

impl Ev {
    pub fn device(mut self, d: &str) -> Self {
        self.device = d.into();
        self
    }
    pub fn src(mut self, s: &str) -> Self {
        self.source = Some(s.into());
        self
    }
    pub fn test(mut self) -> Self {
        self.is_test = true;
        self
    }
    pub fn ingested(mut self, ts: &str) -> Self {
        self.ingested = Some(ms(ts));
        self
    }
    pub fn book(mut self, b: &str) -> Self {
        self.book = Some(b.into());
        self
    }
    /// An `add_to_cart` line: book, quantity 1, price.
    pub fn cart(mut self, b: &str, price: f64) -> Self {
        self.book = Some(b.into());
        self.quantity = Some(1);
        self.unit_price = Some(price);
        self
    }
    pub fn module(mut self, m: &str) -> Self {
        self.module = Some(m.into());
        self
    }
    pub fn results(mut self, n: i64) -> Self {
        self.results_count = Some(n);
        self
    }
    /// An `order_placed` payload: order id, total price and items `(book, quantity, unit_price)`.
    pub fn order(mut self, order_id: &str, total: f64, items: &[(&str, i64, f64)]) -> Self {
        self.order_id = Some(order_id.into());
        self.total_price = Some(total);
        self.items = items
            .iter()
            .map(|(b, q, p)| ((*b).to_owned(), *q, *p))
            .collect();
        self.fees = Some(0.0);
        self.discount = Some(0.0);
        self
    }
    pub fn fees(mut self, f: f64) -> Self {
        self.fees = Some(f);
        self
    }
    /// An `order_returned` payload.
    pub fn ret(mut self, order_id: &str, refund: f64) -> Self {
        self.order_id = Some(order_id.into());
        self.refund = Some(refund);
        self
    }
}

fn opt_str(evs: &[Ev], f: impl Fn(&Ev) -> Option<String>) -> Vec<Option<String>> {
    evs.iter().map(f).collect()
}

/// The events as a lake frame: every column of [`lake_schema`], absent fields null.
pub fn lake(evs: &[Ev]) -> LazyFrame {
    let n = evs.len();
    let ingested: Vec<i64> = evs.iter().map(|e| e.ingested.unwrap_or(e.ts)).collect();
    let base = df!(
        "_row" => (0..n as u32).collect::<Vec<_>>(),
        "event_id" => evs.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        "event_type" => evs.iter().map(|e| e.ty.clone()).collect::<Vec<_>>(),
        "event_timestamp" => evs.iter().map(|e| e.ts).collect::<Vec<_>>(),
        "user_id" => evs.iter().map(|e| e.user.clone()).collect::<Vec<_>>(),
        "device" => evs.iter().map(|e| e.device.clone()).collect::<Vec<_>>(),
        "traffic_source" => opt_str(evs, |e| e.source.clone()),
        "is_test" => evs.iter().map(|e| e.is_test).collect::<Vec<_>>(),
        "book_id" => opt_str(evs, |e| e.book.clone()),
        "module" => opt_str(evs, |e| e.module.clone()),
        "results_count" => evs.iter().map(|e| e.results_count).collect::<Vec<_>>(),
        "quantity" => evs.iter().map(|e| e.quantity).collect::<Vec<_>>(),
        "unit_price" => evs.iter().map(|e| e.unit_price).collect::<Vec<_>>(),
        "order_id" => opt_str(evs, |e| e.order_id.clone()),
        "total_price" => evs.iter().map(|e| e.total_price).collect::<Vec<_>>(),
        "discount" => evs.iter().map(|e| e.discount).collect::<Vec<_>>(),
        "fees" => evs.iter().map(|e| e.fees).collect::<Vec<_>>(),
        "refund_amount" => evs.iter().map(|e| e.refund).collect::<Vec<_>>(),
        "ingested_at" => ingested,
    )
    .unwrap();
    let mut rows = Vec::new();
    let mut books = Vec::new();
    let mut qty = Vec::new();
    let mut price = Vec::new();
    for (i, e) in evs.iter().enumerate() {
        for (b, q, p) in &e.items {
            rows.push(i as u32);
            books.push(b.clone());
            qty.push(*q);
            price.push(*p);
        }
    }
    let items = df!("_row" => rows, "book_id" => books, "quantity" => qty, "unit_price" => price)
        .unwrap()
        .lazy()
        .group_by_stable([col("_row")])
        .agg([as_struct(vec![col("book_id"), col("quantity"), col("unit_price")]).alias("items")]);
    let joined = base.lazy().join(
        items,
        [col("_row")],
        [col("_row")],
        JoinArgs::new(JoinType::Left),
    );
    let schema = lake_schema();
    let present = [
        "event_id",
        "event_type",
        "event_timestamp",
        "user_id",
        "device",
        "traffic_source",
        "is_test",
        "book_id",
        "module",
        "results_count",
        "quantity",
        "unit_price",
        "order_id",
        "items",
        "total_price",
        "discount",
        "fees",
        "refund_amount",
        "ingested_at",
    ];
    let exprs: Vec<Expr> = schema
        .iter()
        .map(|(name, dt)| {
            let e = if present.contains(&name.as_str()) {
                col(name.clone())
            } else {
                lit(NULL)
            };
            e.strict_cast(dt.clone()).alias(name.clone())
        })
        .collect();
    let df = joined.select(exprs).collect().unwrap();
    df.lazy()
}

/// A books dimension with the given `(book_id, unit_cost)`.
pub fn books(rows: &[(&str, f64)]) -> LazyFrame {
    df!(
        "book_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "unit_cost" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
    )
    .unwrap()
    .lazy()
}

/// A marketing spend dimension with the given `(date, channel, spend)`.
pub fn spend(rows: &[(&str, &str, f64)]) -> LazyFrame {
    df!(
        "date" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "channel" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "spend" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
    )
    .unwrap()
    .lazy()
    .with_columns([col("date").cast(DataType::Date)])
}

pub fn strs(df: &DataFrame, c: &str) -> Vec<String> {
    df.column(c)
        .unwrap()
        .cast(&DataType::String)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or("<null>").to_owned())
        .collect()
}

pub fn bools(df: &DataFrame, c: &str) -> Vec<bool> {
    df.column(c)
        .unwrap()
        .bool()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect()
}

pub fn f64s(df: &DataFrame, c: &str) -> Vec<Option<f64>> {
    df.column(c)
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .collect()
}

pub fn i64s(df: &DataFrame, c: &str) -> Vec<Option<i64>> {
    df.column(c)
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect()
}

/// Asserts two floats are equal to 1e-9.
#[track_caller]
pub fn close(actual: Option<f64>, expected: Option<f64>) {
    match (actual, expected) {
        (Some(a), Some(e)) => assert!((a - e).abs() < 1e-9, "{a} != {e}"),
        (a, e) => assert_eq!(a, e),
    }
}
