//! Typed events → the lake's flat, wide Parquet schema (`docs/lake.md`).

use chrono::{DateTime, Utc};
use polars::chunked_array::builder::AnonymousOwnedListBuilder;
use polars::prelude::*;
use quire_events::{Event, Payload};

fn ts_type() -> DataType {
    DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
}

fn item_type() -> DataType {
    DataType::Struct(vec![
        Field::new("book_id".into(), DataType::String),
        Field::new("quantity".into(), DataType::Int64),
        Field::new("unit_price".into(), DataType::Float64),
    ])
}

/// The schema of the lake's event files, in column order.
pub fn events_schema() -> Schema {
    use DataType::*;
    let list_str = List(Box::new(String));
    Schema::from_iter([
        Field::new("event_id".into(), String),
        Field::new("event_type".into(), String),
        Field::new("event_timestamp".into(), ts_type()),
        Field::new("user_id".into(), String),
        Field::new("device".into(), String),
        Field::new("traffic_source".into(), String),
        Field::new("is_test".into(), Boolean),
        Field::new("experiments".into(), String),
        Field::new("page".into(), String),
        Field::new("book_id".into(), String),
        Field::new("via".into(), String),
        Field::new("search_id".into(), String),
        Field::new("query".into(), String),
        Field::new("results_count".into(), Int64),
        Field::new("ranker".into(), String),
        Field::new("results".into(), list_str.clone()),
        Field::new("result_scores".into(), List(Box::new(Float64))),
        Field::new("module".into(), String),
        Field::new("book_ids".into(), list_str),
        Field::new("position".into(), Int64),
        Field::new("quantity".into(), Int64),
        Field::new("unit_price".into(), Float64),
        Field::new("order_id".into(), String),
        Field::new("items".into(), List(Box::new(item_type()))),
        Field::new("total_price".into(), Float64),
        Field::new("discount".into(), Float64),
        Field::new("promo_code".into(), String),
        Field::new("fees".into(), Float64),
        Field::new("refund_amount".into(), Float64),
        Field::new("ingested_at".into(), ts_type()),
    ])
}

/// Column-wise accumulation of the events' fields.
#[derive(Default)]
struct Columns<'a> {
    event_id: Vec<&'a str>,
    event_type: Vec<&'static str>,
    event_timestamp: Vec<i64>,
    user_id: Vec<&'a str>,
    device: Vec<&'static str>,
    traffic_source: Vec<Option<&'static str>>,
    is_test: Vec<bool>,
    experiments: Vec<Option<String>>,
    page: Vec<Option<&'static str>>,
    book_id: Vec<Option<&'a str>>,
    via: Vec<Option<&'static str>>,
    search_id: Vec<Option<&'a str>>,
    query: Vec<Option<&'a str>>,
    results_count: Vec<Option<i64>>,
    ranker: Vec<Option<&'static str>>,
    module: Vec<Option<&'static str>>,
    position: Vec<Option<i64>>,
    quantity: Vec<Option<i64>>,
    unit_price: Vec<Option<f64>>,
    order_id: Vec<Option<&'a str>>,
    total_price: Vec<Option<f64>>,
    discount: Vec<Option<f64>>,
    promo_code: Vec<Option<&'a str>>,
    fees: Vec<Option<f64>>,
    refund_amount: Vec<Option<f64>>,
}

/// Builds the lake frame of `events`, all stamped with `ingested_at`.
pub fn events_frame(events: &[&Event], ingested_at: DateTime<Utc>) -> PolarsResult<DataFrame> {
    let n = events.len();
    let mut c = Columns::default();
    let mut results = ListStringChunkedBuilder::new("results".into(), n, 0);
    let mut book_ids = ListStringChunkedBuilder::new("book_ids".into(), n, 0);
    let mut scores = ListPrimitiveChunkedBuilder::<Float64Type>::new(
        "result_scores".into(),
        n,
        0,
        DataType::Float64,
    );
    // Order items: flattened once, then each order's list is a slice of the flat column.
    let mut item_book: Vec<&str> = Vec::new();
    let mut item_qty: Vec<i64> = Vec::new();
    let mut item_price: Vec<f64> = Vec::new();
    let mut item_spans: Vec<Option<(usize, usize)>> = Vec::with_capacity(n);

    for e in events {
        c.event_id.push(&e.event_id);
        c.event_type.push(e.event_type().as_str());
        c.event_timestamp.push(e.event_timestamp.timestamp_millis());
        c.user_id.push(&e.user_id);
        c.device.push(e.device.as_str());
        c.traffic_source.push(e.traffic_source.map(|t| t.as_str()));
        c.is_test.push(e.is_test);
        c.experiments.push(e.experiments_json());

        let mut row = Row::default();
        let mut has_lists = (false, false);
        let mut span = None;
        match &e.payload {
            Payload::PageView { page } => row.page = Some(page.as_str()),
            Payload::ProductView { book_id, via } => {
                row.book_id = Some(book_id);
                row.via = Some(via.as_str());
            }
            Payload::ReviewViewed { book_id } => row.book_id = Some(book_id),
            Payload::SearchPerformed {
                search_id,
                query,
                results_count,
                ranker,
                results: list,
                result_scores,
            } => {
                row.search_id = Some(search_id);
                row.query = Some(query);
                row.results_count = Some(*results_count);
                row.ranker = Some(ranker.as_str());
                results.append_values_iter(list.iter().map(String::as_str));
                scores.append_opt_slice(result_scores.as_deref());
                has_lists.0 = true;
            }
            Payload::SearchResultClicked {
                search_id,
                book_id,
                position,
            } => {
                row.search_id = Some(search_id);
                row.book_id = Some(book_id);
                row.position = Some(*position);
            }
            Payload::RecommendationShown {
                module,
                book_ids: list,
            } => {
                row.module = Some(module.as_str());
                book_ids.append_values_iter(list.iter().map(String::as_str));
                has_lists.1 = true;
            }
            Payload::RecommendationClicked {
                module,
                book_id,
                position,
            } => {
                row.module = Some(module.as_str());
                row.book_id = Some(book_id);
                row.position = Some(*position);
            }
            Payload::AddToCart {
                book_id,
                quantity,
                unit_price,
            } => {
                row.book_id = Some(book_id);
                row.quantity = Some(*quantity);
                row.unit_price = Some(*unit_price);
            }
            Payload::RemoveFromCart { book_id, quantity } => {
                row.book_id = Some(book_id);
                row.quantity = Some(*quantity);
            }
            Payload::CheckoutStarted => {}
            Payload::OrderPlaced {
                order_id,
                items,
                total_price,
                discount,
                promo_code,
                fees,
            } => {
                row.order_id = Some(order_id);
                row.total_price = Some(*total_price);
                row.discount = Some(*discount);
                row.promo_code = promo_code.as_deref();
                row.fees = Some(*fees);
                span = Some((item_book.len(), items.len()));
                for it in items {
                    item_book.push(&it.book_id);
                    item_qty.push(it.quantity);
                    item_price.push(it.unit_price);
                }
            }
            Payload::OrderReturned {
                order_id,
                refund_amount,
            } => {
                row.order_id = Some(order_id);
                row.refund_amount = Some(*refund_amount);
            }
        }
        if !has_lists.0 {
            results.append_null();
            scores.append_null();
        }
        if !has_lists.1 {
            book_ids.append_null();
        }
        item_spans.push(span);
        row.push_into(&mut c);
    }

    let items = items_column(&item_book, &item_qty, &item_price, &item_spans)?;
    let ingested = vec![ingested_at.timestamp_millis(); n];
    let ts = |name: &str, v: Vec<i64>| -> PolarsResult<Column> {
        Ok(Int64Chunked::from_vec(name.into(), v)
            .into_series()
            .cast(&ts_type())?
            .into_column())
    };
    let columns = vec![
        Column::new("event_id".into(), c.event_id),
        Column::new("event_type".into(), c.event_type),
        ts("event_timestamp", c.event_timestamp)?,
        Column::new("user_id".into(), c.user_id),
        Column::new("device".into(), c.device),
        Column::new("traffic_source".into(), c.traffic_source),
        Column::new("is_test".into(), c.is_test),
        Column::new("experiments".into(), c.experiments),
        Column::new("page".into(), c.page),
        Column::new("book_id".into(), c.book_id),
        Column::new("via".into(), c.via),
        Column::new("search_id".into(), c.search_id),
        Column::new("query".into(), c.query),
        Column::new("results_count".into(), c.results_count),
        Column::new("ranker".into(), c.ranker),
        results.finish().into_column(),
        scores.finish().into_column(),
        Column::new("module".into(), c.module),
        book_ids.finish().into_column(),
        Column::new("position".into(), c.position),
        Column::new("quantity".into(), c.quantity),
        Column::new("unit_price".into(), c.unit_price),
        Column::new("order_id".into(), c.order_id),
        items,
        Column::new("total_price".into(), c.total_price),
        Column::new("discount".into(), c.discount),
        Column::new("promo_code".into(), c.promo_code),
        Column::new("fees".into(), c.fees),
        Column::new("refund_amount".into(), c.refund_amount),
        ts("ingested_at", ingested)?,
    ];
    let df = DataFrame::new(n, columns)?;
    debug_assert_eq!(df.schema().as_ref(), &events_schema());
    Ok(df)
}

fn items_column(
    book: &[&str],
    qty: &[i64],
    price: &[f64],
    spans: &[Option<(usize, usize)>],
) -> PolarsResult<Column> {
    let fields = [
        Column::new("book_id".into(), book),
        Column::new("quantity".into(), qty),
        Column::new("unit_price".into(), price),
    ];
    let flat = StructChunked::from_columns("items".into(), book.len(), &fields)?.into_series();
    let mut builder =
        AnonymousOwnedListBuilder::new("items".into(), spans.len(), Some(item_type()));
    for span in spans {
        match span {
            Some((offset, len)) => builder.append_series(&flat.slice(*offset as i64, *len))?,
            None => builder.append_null(),
        }
    }
    Ok(builder.finish().into_column())
}

/// The scalar, type-specific fields of one event (all null but the event type's own).
#[derive(Default)]
struct Row<'a> {
    page: Option<&'static str>,
    book_id: Option<&'a str>,
    via: Option<&'static str>,
    search_id: Option<&'a str>,
    query: Option<&'a str>,
    results_count: Option<i64>,
    ranker: Option<&'static str>,
    module: Option<&'static str>,
    position: Option<i64>,
    quantity: Option<i64>,
    unit_price: Option<f64>,
    order_id: Option<&'a str>,
    total_price: Option<f64>,
    discount: Option<f64>,
    promo_code: Option<&'a str>,
    fees: Option<f64>,
    refund_amount: Option<f64>,
}

impl<'a> Row<'a> {
    fn push_into(self, c: &mut Columns<'a>) {
        c.page.push(self.page);
        c.book_id.push(self.book_id);
        c.via.push(self.via);
        c.search_id.push(self.search_id);
        c.query.push(self.query);
        c.results_count.push(self.results_count);
        c.ranker.push(self.ranker);
        c.module.push(self.module);
        c.position.push(self.position);
        c.quantity.push(self.quantity);
        c.unit_price.push(self.unit_price);
        c.order_id.push(self.order_id);
        c.total_price.push(self.total_price);
        c.discount.push(self.discount);
        c.promo_code.push(self.promo_code);
        c.fees.push(self.fees);
        c.refund_amount.push(self.refund_amount);
    }
}
