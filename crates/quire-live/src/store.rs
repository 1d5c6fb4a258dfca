//! The live store: what the live KPIs computed, in Redis, read by the dashboard and the API.
//!
//! Keys (prefix `quire:live:`): `hourly` (hash: `YYYY-MM-DDTHH` → [`HourFigure`] JSON),
//! `today` ([`TodayKpis`] JSON), `status` ([`LiveStatus`] JSON), `reemitted` (list of
//! [`Reemission`] JSON, newest first, the last 100).

use chrono::{DateTime, Duration, Utc};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::state::hour_of;
use crate::{Error, HourFigure, RedisAt, Reemission, Result, TodayKpis, hour_key};

const REEMITTED_KEPT: isize = 100;

/// Where the live path stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveStatus {
    /// The newest event time seen (`None` before any event).
    pub max_event_time: Option<DateTime<Utc>>,
    /// `max_event_time` − allowed lateness: hours ending at or before it are closed.
    pub watermark: Option<DateTime<Utc>>,
    /// The hour of `max_event_time`: the dashboard's last bar.
    pub current_hour: Option<DateTime<Utc>>,
    pub allowed_lateness_seconds: i64,
    /// Events the live KPIs took from the bus since the service started.
    pub events_seen: u64,
    pub updated_at: DateTime<Utc>,
}

impl LiveStatus {
    pub fn new(
        max_event_time: Option<DateTime<Utc>>,
        lateness: Duration,
        events_seen: u64,
    ) -> Self {
        Self {
            max_event_time,
            watermark: max_event_time.map(|t| t - lateness),
            current_hour: max_event_time.map(hour_of),
            allowed_lateness_seconds: lateness.num_seconds(),
            events_seen,
            updated_at: Utc::now(),
        }
    }
}

/// Reads and writes the live store.
#[derive(Clone)]
pub struct LiveStore {
    con: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for LiveStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl LiveStore {
    /// The store under the default prefix `quire:live:`.
    pub fn new(con: ConnectionManager) -> Self {
        Self {
            con,
            prefix: "quire:live:".to_owned(),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Writes changed hours, drops the hours left without orders, and writes re-emissions and
    /// the status, in one round trip (MULTI/EXEC).
    pub async fn publish(
        &self,
        hours: &[HourFigure],
        removed: &[DateTime<Utc>],
        reemitted: &[Reemission],
        status: &LiveStatus,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        if !removed.is_empty() {
            let keys: Vec<String> = removed.iter().map(|h| hour_key(*h)).collect();
            pipe.hdel(self.key("hourly"), keys).ignore();
        }
        if !hours.is_empty() {
            let items: Vec<(String, String)> = hours
                .iter()
                .map(|h| (hour_key(h.hour), to_json(h)))
                .collect();
            pipe.hset_multiple(self.key("hourly"), &items).ignore();
        }
        for r in reemitted {
            pipe.lpush(self.key("reemitted"), to_json(r)).ignore();
        }
        if !reemitted.is_empty() {
            pipe.ltrim(self.key("reemitted"), 0, REEMITTED_KEPT - 1)
                .ignore();
        }
        pipe.set(self.key("status"), to_json(status)).ignore();
        let mut con = self.con.clone();
        pipe.query_async::<()>(&mut con)
            .await
            .at(|| "writing the live store".to_owned())
    }

    /// Writes today's KPIs.
    pub async fn publish_today(&self, today: &TodayKpis) -> Result<()> {
        let mut con = self.con.clone();
        con.set::<_, _, ()>(self.key("today"), to_json(today))
            .await
            .at(|| "writing today's KPIs to the live store".to_owned())
    }

    /// The figures of the hours `from..=to` that have orders, by hour.
    pub async fn hourly(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<HourFigure>> {
        let mut keys = Vec::new();
        let mut h = hour_of(from);
        while h <= to {
            keys.push(hour_key(h));
            // The last representable hour ends the range rather than overflowing.
            match h.checked_add_signed(Duration::hours(1)) {
                Some(next) => h = next,
                None => break,
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.con.clone();
        let key = self.key("hourly");
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&key)
            .arg(&keys)
            .query_async(&mut con)
            .await
            .at(|| format!("reading {key}"))?;
        values
            .into_iter()
            .flatten()
            .map(|v| from_json(&key, &v))
            .collect()
    }

    /// Today's KPIs, once computed.
    pub async fn today(&self) -> Result<Option<TodayKpis>> {
        self.get_json("today").await
    }

    /// The status, once the live KPIs have started.
    pub async fn status(&self) -> Result<Option<LiveStatus>> {
        self.get_json("status").await
    }

    /// The latest re-emissions, newest first.
    pub async fn reemitted(&self) -> Result<Vec<Reemission>> {
        let key = self.key("reemitted");
        let mut con = self.con.clone();
        let values: Vec<String> = con
            .lrange(&key, 0, REEMITTED_KEPT - 1)
            .await
            .at(|| format!("reading {key}"))?;
        values.iter().map(|v| from_json(&key, v)).collect()
    }

    async fn get_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let key = self.key(name);
        let mut con = self.con.clone();
        let v: Option<String> = con.get(&key).await.at(|| format!("reading {key}"))?;
        v.map(|v| from_json(&key, &v)).transpose()
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    // The live types are plain structs of numbers, strings and dates: serializing cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

fn from_json<T: DeserializeOwned>(key: &str, v: &str) -> Result<T> {
    serde_json::from_str(v).map_err(|e| Error::Store {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}
