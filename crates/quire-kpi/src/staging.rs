//! Staging: `stg_events` and sessionization.

use polars::prelude::*;

/// A gap between two consecutive events of a user longer than this starts a new session.
pub const SESSION_GAP_MS: i64 = 30 * 60 * 1000;

pub(crate) const ORDER_PLACED: &str = "order_placed";
pub(crate) const ORDER_RETURNED: &str = "order_returned";

/// Internal session columns added by [`with_sessions`].
pub(crate) const NEW_SESSION: &str = "_new_session";
pub(crate) const SESSION_KEY: &str = "_session_key";
pub(crate) const REC_BEFORE: &str = "_rec_before";
const USER_CODE: &str = "_user_code";

pub(crate) fn is_type(t: &str) -> Expr {
    col("event_type").eq(lit(t))
}

pub(crate) fn ts() -> Expr {
    col("event_timestamp")
}

/// `stg_events`: deduplicated by `event_id` (the copy with the earliest `ingested_at` stays,
/// then the first in frame order), test events dropped, all columns kept. The rows come out
/// in `ingested_at` order.
pub fn stage_events(raw: LazyFrame) -> LazyFrame {
    raw.sort(
        ["ingested_at"],
        SortMultipleOptions::default()
            .with_maintain_order(true)
            .with_nulls_last(true),
    )
    // One filter: both parts see the same (sorted, complete) frame.
    .filter(
        col("event_id")
            .is_first_distinct()
            .and(col("is_test").fill_null(lit(false)).not()),
    )
}

/// [`stage_events`] over only the events of the given types (the type filter is applied
/// before deduplication, so the scan reads and deduplicates only those rows). The same as
/// filtering after deduplication while the copies of an `event_id` are of one type: the lake
/// holds each `event_id` once (`quire_lake` drops a repeat at ingest, whatever its type), and
/// the live path deduplicates by id across types before any frame is built. A frame given
/// directly with one id under two types would keep one copy per type here.
pub(crate) fn staged_of(raw: LazyFrame, types: &[&str]) -> LazyFrame {
    let types = Series::new("types".into(), types);
    stage_events(raw.filter(col("event_type").is_in(lit(types).implode(false), false)))
}

/// The staged events that belong to sessions (all but `order_returned`), deduplicated.
pub(crate) fn staged_session_events(raw: LazyFrame) -> LazyFrame {
    stage_events(raw.filter(col("event_type").neq(lit(ORDER_RETURNED))))
}

/// Sorts session events by user, time, `event_id` and adds the internal columns
/// `_new_session` (first event of a session), `_session_key` (UInt32, 1-based, in sort
/// order), `session_start` and `_rec_before` (a `recommendation_clicked` precedes this event
/// in its session). The input must not contain `order_returned` events.
///
/// Users are sorted by an integer code (a categorical mapping local to this query, users in
/// no particular order) rather than by the `user_id` text: only contiguity per user matters,
/// and the numeric key makes the one big sort about twice as fast.
pub(crate) fn with_sessions(events: LazyFrame) -> LazyFrame {
    let ts_ms = ts().cast(DataType::Int64);
    let users = DataType::from_categories(Categories::random(
        "quire-kpi-users".into(),
        CategoricalPhysical::U32,
    ));
    let user_changed = col(USER_CODE)
        .neq(col(USER_CODE).shift(lit(1)))
        .fill_null(lit(true));
    let gap = (ts_ms.clone() - ts_ms.shift(lit(1)))
        .gt(lit(SESSION_GAP_MS))
        .fill_null(lit(true));
    let rec_click = is_type("recommendation_clicked").cast(DataType::Int64);
    // Recommendation clicks strictly before each row, over the whole sorted frame.
    let clicks_before = rec_click.clone().cum_sum(false) - rec_click;
    let forward = |e: Expr| e.fill_null_with_strategy(FillNullStrategy::Forward(None));
    events
        .with_columns([col("user_id").cast(users).to_physical().alias(USER_CODE)])
        .sort(
            [USER_CODE, "event_timestamp", "event_id"],
            SortMultipleOptions::default(),
        )
        .with_columns([user_changed.or(gap).alias(NEW_SESSION)])
        .with_columns([
            col(NEW_SESSION)
                .cast(DataType::UInt32)
                .cum_sum(false)
                .cast(DataType::UInt32)
                .alias(SESSION_KEY),
            forward(when(col(NEW_SESSION)).then(ts()).otherwise(lit(NULL))).alias("session_start"),
            clicks_before
                .clone()
                .gt(forward(
                    when(col(NEW_SESSION))
                        .then(clicks_before)
                        .otherwise(lit(NULL)),
                ))
                .alias(REC_BEFORE),
        ])
        .drop(by_name([USER_CODE], true, false))
}

/// The session id `"{user_id}#{session_start epoch ms}"`.
pub(crate) fn session_id_expr(user: Expr, start: Expr) -> Expr {
    concat_str(
        [
            user,
            lit("#"),
            start.cast(DataType::Int64).cast(DataType::String),
        ],
        "",
        false,
    )
}

/// Sessionized staged events: every staged event but `order_returned` (a back-office event
/// that belongs to no session), grouped by user (users in no particular order), each user's
/// events sorted by `event_timestamp` then `event_id`, with
/// `session_id` (`"{user_id}#{session_start epoch ms}"`), `session_start` (time of the
/// session's first event) and `is_session_start` added.
///
/// A session is a run of one user's events with no gap of more than 30 minutes
/// ([`SESSION_GAP_MS`]) between consecutive events.
pub fn sessionize(stg: LazyFrame) -> LazyFrame {
    with_sessions(stg.filter(col("event_type").neq(lit(ORDER_RETURNED))))
        .with_columns([
            session_id_expr(col("user_id"), col("session_start")).alias("session_id"),
            col(NEW_SESSION).alias("is_session_start"),
        ])
        .drop(by_name([NEW_SESSION, SESSION_KEY, REC_BEFORE], true, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn session_ids(events: &[Ev]) -> Vec<String> {
        let df = sessionize(stage_events(lake(events)))
            .select([col("event_id"), col("session_id")])
            .sort(["event_id"], Default::default())
            .collect()
            .unwrap();
        strs(&df, "session_id")
    }

    #[test]
    fn gap_of_exactly_30_minutes_stays_in_the_session() {
        let ids = session_ids(&[
            ev("e1", "page_view", "2025-10-01T10:00:00Z", "u1"),
            ev("e2", "page_view", "2025-10-01T10:30:00Z", "u1"),
            ev("e3", "page_view", "2025-10-01T11:00:00.001Z", "u1"),
        ]);
        let s1 = format!("u1#{}", ms("2025-10-01T10:00:00Z"));
        let s2 = format!("u1#{}", ms("2025-10-01T11:00:00.001Z"));
        assert_eq!(ids, vec![s1.clone(), s1, s2]);
    }

    #[test]
    fn gap_of_30_minutes_and_1_ms_starts_a_new_session() {
        let ids = session_ids(&[
            ev("e1", "page_view", "2025-10-01T10:00:00Z", "u1"),
            ev("e2", "page_view", "2025-10-01T10:30:00.001Z", "u1"),
        ]);
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[1], format!("u1#{}", ms("2025-10-01T10:30:00.001Z")));
    }

    #[test]
    fn offsets_are_utc_and_users_are_separate() {
        // 12:10+02:00 is 10:10Z: 10 minutes after e1, same session. u2 has its own.
        let ids = session_ids(&[
            ev("e1", "page_view", "2025-10-01T10:00:00Z", "u1"),
            ev("e2", "page_view", "2025-10-01T12:10:00+02:00", "u1"),
            ev("e3", "page_view", "2025-10-01T10:05:00Z", "u2"),
        ]);
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[2], format!("u2#{}", ms("2025-10-01T10:05:00Z")));
    }

    #[test]
    fn order_returned_belongs_to_no_session() {
        let df = sessionize(stage_events(lake(&[
            ev("e1", "page_view", "2025-10-01T10:00:00Z", "u1"),
            ev("e2", "order_returned", "2025-10-01T10:01:00Z", "u1").ret("o1", 3.0),
        ])))
        .collect()
        .unwrap();
        assert_eq!(strs(&df, "event_id"), vec!["e1"]);
        assert_eq!(bools(&df, "is_session_start"), vec![true]);
    }

    #[test]
    fn staging_dedupes_by_earliest_ingestion_and_drops_tests() {
        let df = stage_events(lake(&[
            ev("e1", "page_view", "2025-10-01T10:00:00Z", "u1")
                .ingested("2025-10-01T10:00:05Z")
                .device("tablet"),
            ev("e1", "page_view", "2025-10-01T10:00:00Z", "u1")
                .ingested("2025-10-01T10:00:01Z")
                .device("mobile"),
            ev("e2", "page_view", "2025-10-01T10:01:00Z", "u1").test(),
            // The earliest copy of e3 is a test event: e3 is gone.
            ev("e3", "page_view", "2025-10-01T10:02:00Z", "u1")
                .ingested("2025-10-01T10:02:01Z")
                .test(),
            ev("e3", "page_view", "2025-10-01T10:02:00Z", "u1").ingested("2025-10-01T10:02:09Z"),
        ]))
        .collect()
        .unwrap();
        assert_eq!(strs(&df, "event_id"), vec!["e1"]);
        assert_eq!(strs(&df, "device"), vec!["mobile"]);
        assert_eq!(df.width(), crate::testutil::lake_schema().len());
    }
}
