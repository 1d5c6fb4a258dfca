//! `truth.json`: the planted effects, their true sizes and what the run realized.

use serde::{Serialize, Serializer};

use crate::emit::{DayStats, MALFORMED_KINDS};
use crate::session::{GATEWAY_HORIZON_DAYS, UserKind, UserState};
use crate::world::{DAY_MS, Device, Effects, SegmentParams, World};

#[derive(Debug, Serialize)]
pub struct Truth<'a> {
    pub generator: &'static str,
    pub config: TruthConfig,
    pub segments: &'a [SegmentParams],
    /// Segment of every logged-in user (`usr_<n>`), as in users.csv.
    pub users: UserSegments<'a>,
    /// Test accounts (`is_test: true`), with their segments.
    pub test_users: UserSegments<'a>,
    pub effects: &'a Effects,
    pub experiment: Experiment,
    pub gateway_books: Gateway,
    pub bought_together: BoughtTogether,
    pub series_order: SeriesOrder,
    pub recommendation_click_effect: CausalEffect,
    pub review_effect: CausalEffect,
    pub promotion: PromotionTruth,
    pub devices: Devices,
    pub after_abandon: AfterAbandon,
    pub time_to_purchase: TimeToPurchase,
    pub data_quality: DataQuality,
    pub volumes: Volumes,
}

#[derive(Debug, Serialize)]
pub struct TruthConfig {
    pub days: u32,
    pub users: u32,
    pub seed: u64,
    pub start: String,
}

/// Serializes `user_id → segment` in user order.
#[derive(Debug)]
pub struct UserSegments<'a>(pub Vec<&'a UserState>);

impl Serialize for UserSegments<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|u| (&u.user_id, u.profile.segment)))
    }
}

#[derive(Debug, Serialize)]
pub struct ArmStats {
    pub users: u64,
    pub conversions: u64,
    pub cvr: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Experiment {
    pub name: &'static str,
    pub control: &'static str,
    pub treatment: &'static str,
    pub assignment: &'static str,
    pub mechanism: &'static str,
    /// Realized user-level conversion (non-test users, logged-in and anonymous), as
    /// `quire analyze abtest` defines it.
    pub bm25: ArmStats,
    pub ltr: ArmStats,
    pub abs_diff: Option<f64>,
    pub rel_lift: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Gateway {
    pub book_ids: Vec<String>,
    pub session_rate_multiplier: f64,
    pub mechanism: &'static str,
    pub gateway_first_users: u64,
    pub other_first_users: u64,
    /// Realized orders per user-day after the day of the first purchase.
    pub later_orders_per_user_day_gateway: Option<f64>,
    pub later_orders_per_user_day_other: Option<f64>,
    /// The effect per gateway book in `quire analyze gateway`'s units (see `effect_definition`).
    pub effect_horizon_days: i64,
    pub effect_definition: &'static str,
    pub books: Vec<GatewayBook>,
}

#[derive(Debug, Serialize)]
pub struct GatewayBook {
    pub book_id: String,
    /// Logged-in users whose first order holds the book, at least `effect_horizon_days` before
    /// the end of the run.
    pub first_buyers: u64,
    /// Their mean revenue (dollars of `total_price`) from the sessions the multiplier added, in
    /// the `effect_horizon_days` after the first order: the effect on the treated (ATT).
    pub att_later_revenue: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct DeviceTruth {
    pub device: &'static str,
    pub intent_shift: f64,
    /// Non-test sessions as simulated, and those with an order.
    pub sessions: u64,
    pub converted_sessions: u64,
    pub cvr: Option<f64>,
    /// cvr − the reference device's cvr.
    pub cvr_diff_vs_reference: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Devices {
    pub reference: &'static str,
    pub mechanism: &'static str,
    pub by_device: Vec<DeviceTruth>,
}

#[derive(Debug, Serialize)]
pub struct AfterAbandon {
    pub cart_return_probability: f64,
    pub mechanism: &'static str,
    /// Non-test sessions with an add_to_cart and no order.
    pub abandoned_sessions: u64,
    /// Of those, the ones the same user (visitor) had another session after.
    pub with_next_session: u64,
    /// Of those, the next sessions that started at the cart (`page_view` of `cart`).
    pub next_session_at_cart: u64,
}

#[derive(Debug, Serialize)]
pub struct ShareWithin {
    pub days: f64,
    pub share: f64,
}

#[derive(Debug, Serialize)]
pub struct PurchaseStage {
    pub users: u64,
    /// Users with the purchase within `follow_up_days`.
    pub purchased: u64,
    /// Share with the purchase within `days`, for the analysis' grid days up to the follow-up.
    pub share_within: Vec<ShareWithin>,
    /// Smallest time by which half had purchased (null: fewer than half within the follow-up).
    pub median_days: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct TimeToPurchase {
    pub definition: &'static str,
    pub cohort_start_date: String,
    pub cohort_end_date: String,
    pub follow_up_days: u32,
    pub first_purchase: PurchaseStage,
    pub second_purchase: PurchaseStage,
}

/// The analysis' grid (`quire analyze time-to-purchase`'s tables).
const TTP_GRID_DAYS: [f64; 8] = [1.0 / 24.0, 1.0, 2.0, 3.0, 7.0, 14.0, 21.0, 28.0];

/// Times to the event in days (None: not within the follow-up); the follow-up in days.
fn purchase_stage(times: &[Option<f64>], follow_up: f64) -> PurchaseStage {
    let n = times.len();
    let mut seen: Vec<f64> = times
        .iter()
        .flatten()
        .copied()
        .filter(|&t| t <= follow_up)
        .collect();
    seen.sort_by(f64::total_cmp);
    let share_within = TTP_GRID_DAYS
        .iter()
        .filter(|&&d| d <= follow_up)
        .map(|&d| ShareWithin {
            days: d,
            share: ratio(seen.iter().filter(|&&t| t <= d).count() as f64, n as f64).unwrap_or(0.0),
        })
        .collect();
    PurchaseStage {
        users: n as u64,
        purchased: seen.len() as u64,
        share_within,
        median_days: n
            .checked_sub(1)
            .and_then(|_| seen.get(n.div_ceil(2) - 1).copied()),
    }
}

#[derive(Debug, Serialize)]
pub struct Pair {
    pub antecedent: String,
    pub consequent: String,
}

#[derive(Debug, Serialize)]
pub struct BoughtTogether {
    pub probability: f64,
    pub pairs: Vec<Pair>,
    pub orders_with_an_antecedent: u64,
    pub orders_with_a_full_pair: u64,
}

#[derive(Debug, Serialize)]
pub struct SeriesOrder {
    pub in_order_probability: f64,
    pub next_volume_session_probability: f64,
    /// Purchases of a volume whose previous catalog volume was owned or bought with it.
    pub in_order_purchases: u64,
    pub out_of_order_purchases: u64,
}

#[derive(Debug, Serialize)]
pub struct CausalEffect {
    pub order_logit_shift: f64,
    pub definition: &'static str,
    /// True average effect on session conversion over all sessions (probability points).
    pub ate_on_session_cvr: Option<f64>,
    /// True average effect on session conversion over treated sessions.
    pub att_on_session_cvr: Option<f64>,
    /// What a naive comparison shows: cvr(treated) − cvr(untreated).
    pub naive_cvr_diff: Option<f64>,
    pub sessions: u64,
    pub treated_sessions: u64,
    pub cvr_treated: Option<f64>,
    pub cvr_untreated: Option<f64>,
    /// The effect lives at the order decision: treated sessions that reached it
    /// (`checkout_started`) and the true average effect on their order probability. This is
    /// what `quire analyze uplift` estimates over the sessions that started checkout.
    pub treated_sessions_at_order_step: u64,
    pub att_at_order_step: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct PromoDay {
    pub date: String,
    pub phase: &'static str,
    pub promoted_units: u64,
    pub same_genre_other_units: u64,
    pub other_units: u64,
    pub orders_with_code: u64,
}

#[derive(Debug, Serialize)]
pub struct PromotionTruth {
    pub promo_code: &'static str,
    pub discount_rate: f64,
    pub start_date: String,
    pub end_date: String,
    pub dip_end_date: String,
    pub genres: Vec<&'static str>,
    pub book_ids: Vec<String>,
    pub sales_add_logit: f64,
    pub cannibalization_add_logit: f64,
    pub pull_forward_add_logit: f64,
    pub code_use_probability: f64,
    pub mechanism: &'static str,
    pub daily: Vec<PromoDay>,
}

#[derive(Debug, Serialize)]
pub struct DataQuality {
    pub test_events: u64,
    pub duplicate_lines: u64,
    pub retried_orders: u64,
    pub late_events: u64,
    pub late_delay_minutes: [u32; 2],
    pub offset_timestamps: u64,
    pub offsets: [&'static str; 5],
    pub malformed: std::collections::BTreeMap<&'static str, u64>,
    pub order_returns: u64,
}

#[derive(Debug, Serialize)]
pub struct Volumes {
    pub lines: u64,
    pub events: u64,
    pub orders: u64,
    pub sessions: u64,
    /// users × days.
    pub user_days: u64,
    /// events / user_days (anonymous visitors' events included).
    pub events_per_user_day: f64,
    pub session_cvr: Option<f64>,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Counts from the written file, for the volume section.
#[derive(Debug, Clone, Copy)]
pub struct FileCounts {
    pub lines: u64,
    pub events: u64,
    pub test_events: u64,
    pub orders: u64,
}

pub fn build<'a>(
    world: &'a World,
    users: &'a [UserState],
    daily: &[DayStats],
    counts: FileCounts,
) -> Truth<'a> {
    let mut total = DayStats::default();
    for d in daily {
        total.add(d);
    }
    let book_id = |b: u32| format!("bk_{}", world.catalog.books[b as usize].id);
    let date = |d: u32| world.date(d).format("%Y-%m-%d").to_string();

    let mut arms = [0, 1].map(|a| [total.anon_exposed[a], total.anon_converted[a]]);
    let mut gw = [[0u64; 2]; 2];
    let mut gw_days = [0u64; 2];
    for u in users.iter().filter(|u| u.kind == UserKind::Registered) {
        let arm = usize::from(u.profile.ltr);
        arms[arm][0] += u64::from(u.exposed);
        arms[arm][1] += u64::from(u.converted);
        if let Some(first) = u.first_purchase_day {
            let g = usize::from(!u.gateway_first);
            gw[g][0] += 1;
            gw[g][1] += u64::from(u.orders_after_first);
            gw_days[g] += world.days.saturating_sub(first + 1) as u64;
        }
    }
    let arm = |a: usize| ArmStats {
        users: arms[a][0],
        conversions: arms[a][1],
        cvr: ratio(arms[a][1] as f64, arms[a][0] as f64),
    };
    let (bm25, ltr) = (arm(0), arm(1));
    let abs_diff = ltr.cvr.zip(bm25.cvr).map(|(t, c)| t - c);
    let rel_lift = abs_diff.zip(bm25.cvr).and_then(|(d, c)| ratio(d, c));

    let causal = |shift,
                  definition,
                  ate_sum: f64,
                  att_sum: f64,
                  treated: u64,
                  treated_orders: u64,
                  at_order_step: u64| {
        let untreated = total.sessions - treated;
        let cvr_t = ratio(treated_orders as f64, treated as f64);
        let cvr_u = ratio((total.orders - treated_orders) as f64, untreated as f64);
        CausalEffect {
            order_logit_shift: shift,
            definition,
            ate_on_session_cvr: ratio(ate_sum, total.sessions as f64),
            att_on_session_cvr: ratio(att_sum, treated as f64),
            naive_cvr_diff: cvr_t.zip(cvr_u).map(|(t, u)| t - u),
            sessions: total.sessions,
            treated_sessions: treated,
            cvr_treated: cvr_t,
            cvr_untreated: cvr_u,
            treated_sessions_at_order_step: at_order_step,
            att_at_order_step: ratio(att_sum, at_order_step as f64),
        }
    };
    let p = &world.promo;
    let daily_promo = daily
        .iter()
        .enumerate()
        .map(|(d, s)| {
            let d = d as u32;
            PromoDay {
                date: date(d),
                phase: if d < p.first_day {
                    "before"
                } else if d <= p.last_day {
                    "promo"
                } else if d <= p.dip_last_day {
                    "dip"
                } else {
                    "after"
                },
                promoted_units: s.promoted_units,
                same_genre_other_units: s.same_genre_units,
                other_units: s.other_units,
                orders_with_code: s.promo_code_orders,
            }
        })
        .collect();
    let registered: Vec<&UserState> = users
        .iter()
        .filter(|u| u.kind == UserKind::Registered)
        .collect();
    let user_days = world.users as u64 * world.days as u64;
    let end_ms = world.days as i64 * DAY_MS;
    let horizon_ms = GATEWAY_HORIZON_DAYS * DAY_MS;
    let gateway_effects = world
        .gateway_books
        .iter()
        .map(|&b| {
            let (n, cents) = registered
                .iter()
                .filter(|u| {
                    u.first_gateways.contains(&b)
                        && u.order_ms[0].is_some_and(|f| f + horizon_ms <= end_ms)
                })
                .fold((0u64, 0i64), |(n, c), u| (n + 1, c + u.gateway_added_cents));
            GatewayBook {
                book_id: book_id(b),
                first_buyers: n,
                att_later_revenue: ratio(cents as f64 / 100.0, n as f64),
            }
        })
        .collect();
    let devices = [Device::Desktop, Device::Mobile, Device::Tablet];
    let cvr = |i: usize| {
        ratio(
            total.device_orders[i] as f64,
            total.device_sessions[i] as f64,
        )
    };
    let by_device = devices
        .iter()
        .map(|&d| {
            let i = d as usize;
            DeviceTruth {
                device: d.as_str(),
                intent_shift: d.intent_shift(),
                sessions: total.device_sessions[i],
                converted_sessions: total.device_orders[i],
                cvr: cvr(i),
                cvr_diff_vs_reference: cvr(i).zip(cvr(0)).map(|(a, r)| a - r),
            }
        })
        .collect();
    // Time to purchase: the users (logged-in and anonymous) whose first visit falls in the first
    // half of the run, each followed to the end of the run.
    let half = world.days / 2;
    let cohort_end_ms = half as i64 * DAY_MS;
    let follow_up = world.days - half;
    let days_between = |a: i64, b: i64| (b - a) as f64 / DAY_MS as f64;
    let cohort: Vec<(i64, [Option<i64>; 2])> = registered
        .iter()
        .filter_map(|u| Some((u.first_visit_ms?, u.order_ms)))
        .chain(total.anon_purchase_times.iter().copied())
        .filter(|(v, _)| *v < cohort_end_ms)
        .collect();
    let to_first: Vec<Option<f64>> = cohort
        .iter()
        .map(|(v, o)| o[0].map(|t| days_between(*v, t)))
        .collect();
    let to_second: Vec<Option<f64>> = cohort
        .iter()
        .filter_map(|(_, o)| {
            let first = o[0].filter(|&t| t < cohort_end_ms)?;
            Some(o[1].map(|t| days_between(first, t)))
        })
        .collect();
    Truth {
        generator: concat!("quire-sim ", env!("CARGO_PKG_VERSION")),
        config: TruthConfig {
            days: world.days,
            users: world.users,
            seed: world.seed,
            start: world.start.format("%Y-%m-%d").to_string(),
        },
        segments: &world.segments,
        users: UserSegments(registered),
        test_users: UserSegments(users.iter().filter(|u| u.kind == UserKind::Test).collect()),
        effects: &world.effects,
        experiment: Experiment {
            name: "search_ranker",
            control: "bm25",
            treatment: "ltr",
            assignment: "per user_id, 50/50: low bit of SplitMix64(FNV-1a(\"search_ranker:\" + user_id))",
            mechanism: "ltr re-ranks the top 40 BM25 hits by the user's true relevance plus N(0, ltr_noise_sd) noise; clicks follow position bias x relevance, so ltr users click and buy more",
            bm25,
            ltr,
            abs_diff,
            rel_lift,
        },
        gateway_books: Gateway {
            book_ids: world.gateway_books.iter().map(|&b| book_id(b)).collect(),
            session_rate_multiplier: world.effects.gateway_session_multiplier,
            mechanism: "a logged-in user whose first order contains a gateway book has session_rate_multiplier x the sessions per day from the day after (per-session conversion unchanged)",
            gateway_first_users: gw[0][0],
            other_first_users: gw[1][0],
            later_orders_per_user_day_gateway: ratio(gw[0][1] as f64, gw_days[0] as f64),
            later_orders_per_user_day_other: ratio(gw[1][1] as f64, gw_days[1] as f64),
            effect_horizon_days: GATEWAY_HORIZON_DAYS,
            effect_definition: "per gateway book, over the logged-in users whose first order holds it at least effect_horizon_days before the end of the run: the mean total_price of the orders placed after the first order and within effect_horizon_days of it in the sessions the multiplier added (each session of a boosted day is one it added with probability (m - 1) / m, drawn on a separate stream): the revenue the book's first buyers would not have had without the effect, i.e. quire analyze gateway --days effect_horizon_days's ATT",
            books: gateway_effects,
        },
        bought_together: BoughtTogether {
            probability: world.effects.pair_probability,
            pairs: world
                .pairs
                .iter()
                .map(|&(a, b)| Pair {
                    antecedent: book_id(a),
                    consequent: book_id(b),
                })
                .collect(),
            orders_with_an_antecedent: total.pair_a_orders,
            orders_with_a_full_pair: total.pair_ab_orders,
        },
        series_order: SeriesOrder {
            in_order_probability: world.effects.series_in_order_probability,
            next_volume_session_probability: world.effects.series_next_volume_probability,
            in_order_purchases: total.series_in_order,
            out_of_order_purchases: total.series_out_of_order,
        },
        recommendation_click_effect: causal(
            world.effects.rec_click_order_logit,
            "a session with >= 1 recommendation_clicked gets order_logit_shift at the order decision (after checkout_started), cart held fixed; desktop and logged-in sessions click more and buy more (rec_click_intent_slope x visible intent), which confounds the naive comparison through observable covariates; ate/att are exact expectations over the simulated sessions",
            total.rec_ate_sum,
            total.rec_att_sum,
            total.rec_click_sessions,
            total.rec_click_orders,
            total.rec_click_order_step,
        ),
        review_effect: causal(
            world.effects.review_order_logit,
            "a session with >= 1 review_viewed gets order_logit_shift at the order decision, cart held fixed; desktop and logged-in sessions read reviews more (observable confounding)",
            total.review_ate_sum,
            total.review_att_sum,
            total.review_sessions,
            total.review_orders,
            total.review_order_step,
        ),
        promotion: PromotionTruth {
            promo_code: p.promo_code,
            discount_rate: p.discount_rate,
            start_date: date(p.first_day),
            end_date: date(p.last_day),
            dip_end_date: date(p.dip_last_day),
            genres: p
                .genres
                .iter()
                .map(|&g| crate::catalog::GENRES[g as usize])
                .collect(),
            book_ids: p.books.iter().map(|&b| book_id(b)).collect(),
            sales_add_logit: world.effects.promo_add_logit,
            cannibalization_add_logit: world.effects.cannibalization_logit,
            pull_forward_add_logit: world.effects.pull_forward_logit,
            code_use_probability: world.effects.promo_code_use,
            mechanism: "in the window promoted books get sales_add_logit x segment promo_response on add-to-cart, are shown on the home page and in email landings and are 20% off with the code; non-promoted books of the promoted genres get cannibalization_add_logit; from the day after the window to dip_end_date promoted books get pull_forward_add_logit",
            daily: daily_promo,
        },
        devices: Devices {
            reference: "desktop",
            mechanism: "a session's purchase intent is the user's plus the device's intent_shift (logit points) plus noise; intent raises staying, adding, checkout and ordering, and (2 x intent_shift) recommendation clicks and review reads; the device is drawn independently of the traffic source; sessions and converted sessions (with an order) are realized counts of the non-test sessions",
            by_device,
        },
        after_abandon: AfterAbandon {
            cart_return_probability: world.effects.cart_return_probability,
            mechanism: "the next session of a user (visitor) after one that had an add_to_cart and no order starts at the cart (a page_view of cart, carrying the traffic source) with cart_return_probability, then goes on as it would have; no other session starts at the cart",
            abandoned_sessions: total.abandoned_sessions,
            with_next_session: total.abandoned_then_session,
            next_session_at_cart: total.cart_returns,
        },
        time_to_purchase: TimeToPurchase {
            definition: "cohort: non-test users (logged-in and anonymous) whose first event falls in the first half of the run (days 0 to days/2 - 1); first_purchase: days from that first event to the first order; second_purchase: days from the first order to the second, for the cohort members whose first order falls in the same first half; every member is followed to the end of the run (at least follow_up_days), so the shares are exact, not censored: what a Kaplan-Meier fit on the first half alone (censored at its end) estimates",
            cohort_start_date: date(0),
            cohort_end_date: date(half.max(1) - 1),
            follow_up_days: follow_up,
            first_purchase: purchase_stage(&to_first, follow_up as f64),
            second_purchase: purchase_stage(&to_second, follow_up as f64),
        },
        data_quality: DataQuality {
            test_events: counts.test_events,
            duplicate_lines: total.duplicates,
            retried_orders: total.retried_orders,
            late_events: total.late_events,
            late_delay_minutes: [5, 90],
            offset_timestamps: total.offset_timestamps,
            offsets: ["+02:00", "-05:00", "+05:30", "+01:00", "-08:00"],
            malformed: MALFORMED_KINDS
                .iter()
                .zip(total.malformed)
                .map(|(k, n)| (*k, n))
                .collect(),
            order_returns: total.returns,
        },
        volumes: Volumes {
            lines: counts.lines,
            events: counts.events,
            orders: counts.orders,
            sessions: total.sessions,
            user_days,
            events_per_user_day: ratio(counts.events as f64, user_days as f64).unwrap_or(0.0),
            session_cvr: ratio(total.orders as f64, total.sessions as f64),
        },
    }
}
