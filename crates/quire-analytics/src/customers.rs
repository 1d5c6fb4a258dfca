//! Per-customer facts of a range, shared by `segments` and `top-customers`: one row per user
//! with at least one order in the range.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;

use crate::clv::Rfm;
use crate::{Dataset, Error, Result};

pub(crate) const DAY_MS: f64 = 86_400_000.0;

/// One customer's facts (money in the store's currency, times in days).
#[derive(Clone, Debug, PartialEq)]
pub struct Customer {
    pub user_id: String,
    pub orders: u64,
    pub spend: f64,
    /// Σ of the orders' `net` (total price less capped refunds): the customer's historical
    /// CLV as kpis.md defines `clv_historical`.
    pub net_spend: f64,
    pub aov: f64,
    /// Share of orders with a promo code.
    pub promo_share: f64,
    /// Days from the last order to the end of observation.
    pub recency_days: f64,
    /// Units per genre (genres of [`Customers::genres`] order).
    pub genre_units: Vec<f64>,
    pub units: f64,
    /// Share of the user's sessions on mobile (NaN without sessions).
    pub mobile_share: f64,
    /// The BG/NBD summary in days (distinct order days, as Fader & Hardie count purchases).
    pub rfm: Rfm,
    /// Mean value of the repeat purchases, a purchase being a distinct order day after the
    /// first (the unit of `rfm.x`, as the Gamma-Gamma model needs): the repeat days' spend over
    /// their count; NaN if none.
    pub repeat_mean: f64,
}

/// Every customer of the range and the genres seen.
#[derive(Clone, Debug, Default)]
pub struct Customers {
    pub genres: Vec<String>,
    pub rows: Vec<Customer>,
}

pub(crate) fn strs(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    Ok(df
        .column(name)?
        .cast(&DataType::String)?
        .str()?
        .iter()
        .map(|s| s.map(str::to_owned))
        .collect())
}

pub(crate) fn f64s(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    Ok(df
        .column(name)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .collect())
}

/// Builds the customer table of `ds`'s range.
pub fn customers(ds: &Dataset) -> Result<Customers> {
    let orders = ds.orders()?;
    if orders.height() == 0 {
        return Err(Error::NoAnswer("no orders in the range".into()));
    }
    let end = ds
        .end_ms()?
        .ok_or_else(|| Error::NoAnswer("no sessions in the range".into()))?;
    let users = strs(&orders, "user_id")?;
    let ts = f64s(
        &orders
            .clone()
            .lazy()
            .select([col("order_timestamp").cast(DataType::Int64)])
            .collect()?,
        "order_timestamp",
    )?;
    let price = f64s(&orders, "total_price")?;
    let net = f64s(&orders, "net")?;
    let promo = strs(&orders, "promo_code")?;
    // Per user: (time, value, promo, net) of each order, in time order (fct_orders is sorted).
    let mut per_user: BTreeMap<String, Vec<(f64, f64, bool, f64)>> = BTreeMap::new();
    for i in 0..orders.height() {
        let (Some(u), Some(t)) = (&users[i], ts[i]) else {
            continue;
        };
        per_user.entry(u.clone()).or_default().push((
            t,
            price[i].unwrap_or(0.0),
            promo[i].as_deref().is_some_and(|p| !p.is_empty()),
            net[i].unwrap_or(0.0),
        ));
    }
    // Genre units.
    let items = ds.items()?;
    let iu = strs(&items, "user_id")?;
    let ig = strs(&items, "genre")?;
    let iq = f64s(&items, "quantity")?;
    let mut genre_totals: HashMap<String, f64> = HashMap::new();
    for i in 0..items.height() {
        let g = ig[i].clone().unwrap_or_else(|| "unknown".into());
        *genre_totals.entry(g).or_default() += iq[i].unwrap_or(0.0);
    }
    let mut genres: Vec<(String, f64)> = genre_totals.into_iter().collect();
    genres.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let genres: Vec<String> = genres.into_iter().map(|g| g.0).collect();
    let gidx: HashMap<&str, usize> = genres
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let mut units: HashMap<&str, Vec<f64>> = HashMap::new();
    for i in 0..items.height() {
        let (Some(u), q) = (&iu[i], iq[i].unwrap_or(0.0)) else {
            continue;
        };
        let g = ig[i].as_deref().unwrap_or("unknown");
        let v = units
            .entry(u.as_str())
            .or_insert_with(|| vec![0.0; genres.len()]);
        v[gidx[g]] += q;
    }
    // Mobile share of sessions.
    let sessions = ds.sessions()?;
    let su = strs(&sessions, "user_id")?;
    let sd = strs(&sessions, "device")?;
    let mut mobile: HashMap<&str, (f64, f64)> = HashMap::new();
    for i in 0..sessions.height() {
        if let Some(u) = &su[i] {
            let e = mobile.entry(u.as_str()).or_default();
            e.1 += 1.0;
            if sd[i].as_deref() == Some("mobile") {
                e.0 += 1.0;
            }
        }
    }
    let end = end as f64;
    let day = |ms: f64| (ms / DAY_MS).floor();
    let rows = per_user
        .into_iter()
        .map(|(user_id, os)| {
            let n = os.len() as f64;
            let spend: f64 = os.iter().map(|o| o.1).sum();
            let first_day = day(os[0].0);
            let mut days: Vec<f64> = os.iter().map(|o| day(o.0)).collect();
            days.dedup();
            let last = os.last().map_or(os[0].0, |o| o.0);
            let repeat_spend: f64 = os
                .iter()
                .filter(|o| day(o.0) > first_day)
                .map(|o| o.1)
                .sum();
            let repeat_days = days.len() - 1;
            let gu = units
                .get(user_id.as_str())
                .cloned()
                .unwrap_or_else(|| vec![0.0; genres.len()]);
            let (m, s) = mobile.get(user_id.as_str()).copied().unwrap_or((0.0, 0.0));
            Customer {
                orders: os.len() as u64,
                spend,
                net_spend: os.iter().map(|o| o.3).sum(),
                aov: spend / n,
                promo_share: os.iter().filter(|o| o.2).count() as f64 / n,
                recency_days: (end - last) / DAY_MS,
                units: gu.iter().sum(),
                genre_units: gu,
                mobile_share: if s > 0.0 { m / s } else { f64::NAN },
                rfm: Rfm {
                    x: (days.len() - 1) as f64,
                    t_x: days.last().copied().unwrap_or(first_day) - first_day,
                    t_cap: (day(end) - first_day)
                        .max(days.last().copied().unwrap_or(first_day) - first_day),
                },
                repeat_mean: if repeat_days == 0 {
                    f64::NAN
                } else {
                    repeat_spend / repeat_days as f64
                },
                user_id,
            }
        })
        .collect();
    Ok(Customers { genres, rows })
}

pub(crate) fn i64s(df: &DataFrame, name: &str) -> Result<Vec<Option<i64>>> {
    Ok(df
        .column(name)?
        .cast(&DataType::Int64)?
        .i64()?
        .iter()
        .collect())
}

pub(crate) fn bools(df: &DataFrame, name: &str) -> Result<Vec<bool>> {
    Ok(df
        .column(name)?
        .cast(&DataType::Boolean)?
        .bool()?
        .iter()
        .map(|b| b.unwrap_or(false))
        .collect())
}
