//! The simulated world: segments, user profiles, marketing spend, seasonality and the planted
//! effects (promotion, gateway books, bought-together pairs, causal sizes).

use chrono::{Datelike, NaiveDate, Weekday};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::Serialize;

use crate::SimConfig;
use crate::catalog::{
    BIOGRAPHY, BUSINESS, CHILDRENS, CLASSICS, Catalog, FANTASY, HISTORY, HORROR, MYSTERY, N_GENRES,
    ROMANCE, SCIFI, YOUNG_ADULT,
};
use crate::rng::{hash_str, rng_for};

pub const DAY_MS: i64 = 86_400_000;

/// Behavioural segment of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    FantasyFan,
    HistoryBuff,
    MysteryReader,
    BargainHunter,
    HighSpender,
    CasualBrowser,
}

pub const SEGMENTS: [Segment; 6] = [
    Segment::FantasyFan,
    Segment::HistoryBuff,
    Segment::MysteryReader,
    Segment::BargainHunter,
    Segment::HighSpender,
    Segment::CasualBrowser,
];

/// Parameters of one segment (also written to truth.json).
#[derive(Debug, Clone, Serialize)]
pub struct SegmentParams {
    pub segment: Segment,
    /// Share among logged-in users.
    pub share: f64,
    /// Share among anonymous visitors.
    pub anon_share: f64,
    /// Genres with a raised affinity (logit points added to the -0.4 base).
    pub favourite_genres: Vec<(&'static str, f64)>,
    /// Utility lost per $10 of price above $15.
    pub price_sensitivity: f64,
    /// Base purchase intent (logit points).
    pub intent: f64,
    /// Mean sessions per day.
    pub sessions_per_day: f64,
    /// Multiplier of the promotion's logit lift.
    pub promo_response: f64,
    /// Probability that an added item has quantity 2.
    pub multi_quantity: f64,
}

pub fn segment_params() -> Vec<SegmentParams> {
    let p = |segment,
             share,
             anon_share,
             favourite_genres,
             price_sensitivity,
             intent,
             sessions_per_day,
             promo_response,
             multi_quantity| SegmentParams {
        segment,
        share,
        anon_share,
        favourite_genres,
        price_sensitivity,
        intent,
        sessions_per_day,
        promo_response,
        multi_quantity,
    };
    vec![
        p(
            Segment::FantasyFan,
            0.18,
            0.08,
            vec![
                ("Fantasy", 1.8),
                ("Science Fiction", 1.1),
                ("Young Adult", 0.9),
                ("Horror", 0.3),
            ],
            0.6,
            0.3,
            0.36,
            1.0,
            0.05,
        ),
        p(
            Segment::HistoryBuff,
            0.12,
            0.06,
            vec![
                ("History", 1.8),
                ("Biography", 1.3),
                ("Classics", 0.9),
                ("Business", 0.3),
            ],
            0.4,
            0.3,
            0.30,
            1.0,
            0.05,
        ),
        p(
            Segment::MysteryReader,
            0.15,
            0.08,
            vec![("Mystery", 1.8), ("Horror", 0.9), ("Romance", 0.5)],
            0.6,
            0.2,
            0.34,
            1.0,
            0.05,
        ),
        p(
            Segment::BargainHunter,
            0.17,
            0.12,
            vec![
                ("Romance", 0.7),
                ("Mystery", 0.5),
                ("Children's", 0.4),
                ("Young Adult", 0.3),
            ],
            1.8,
            0.0,
            0.42,
            2.2,
            0.04,
        ),
        p(
            Segment::HighSpender,
            0.08,
            0.03,
            vec![
                ("Business", 0.7),
                ("History", 0.5),
                ("Fantasy", 0.4),
                ("Science Fiction", 0.4),
                ("Biography", 0.4),
                ("Children's", 0.3),
            ],
            0.15,
            0.9,
            0.40,
            0.5,
            0.30,
        ),
        p(
            Segment::CasualBrowser,
            0.30,
            0.63,
            vec![],
            0.8,
            -1.2,
            0.24,
            1.0,
            0.03,
        ),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
        }
    }
    /// Purchase-intent shift of the device (logit points).
    pub fn intent_shift(self) -> f64 {
        match self {
            Device::Desktop => 0.25,
            Device::Mobile => -0.3,
            Device::Tablet => 0.0,
        }
    }
}

/// Traffic sources; the first four carry marketing spend.
pub const SOURCES: [&str; 6] = ["paid", "social", "email", "referral", "organic", "direct"];
pub const PAID: usize = 0;
pub const SOCIAL: usize = 1;
pub const EMAIL: usize = 2;
pub const REFERRAL: usize = 3;
pub const ORGANIC: usize = 4;
pub const DIRECT: usize = 5;
/// Base share of sessions per source at average spend.
const SOURCE_SHARE: [f64; 6] = [0.15, 0.08, 0.07, 0.05, 0.40, 0.25];
/// Average daily spend per source, in dollars per 1,000 users.
const SPEND_PER_1000: [f64; 4] = [220.0, 110.0, 20.0, 45.0];

const COUNTRIES: [(&str, f64); 8] = [
    ("US", 0.45),
    ("GB", 0.15),
    ("CA", 0.10),
    ("DE", 0.08),
    ("AU", 0.07),
    ("FR", 0.05),
    ("IN", 0.05),
    ("NL", 0.05),
];

/// Relative session starts per UTC hour.
pub const HOUR_WEIGHTS: [f64; 24] = [
    0.30, 0.20, 0.15, 0.12, 0.12, 0.20, 0.40, 0.70, 0.90, 1.00, 1.00, 1.05, 1.10, 1.05, 1.00, 1.00,
    1.05, 1.15, 1.30, 1.50, 1.60, 1.50, 1.10, 0.60,
];

fn weekday_factor(d: Weekday) -> f64 {
    match d {
        Weekday::Mon => 1.0,
        Weekday::Tue => 0.97,
        Weekday::Wed => 0.98,
        Weekday::Thu => 1.0,
        Weekday::Fri => 0.92,
        Weekday::Sat => 1.12,
        Weekday::Sun => 1.2,
    }
}

/// A user's stable traits.
#[derive(Debug, Clone)]
pub struct Profile {
    pub segment: Segment,
    pub affinity: [f32; N_GENRES],
    pub price_sensitivity: f64,
    pub intent: f64,
    pub sessions_per_day: f64,
    pub promo_response: f64,
    pub multi_quantity: f64,
    pub device: Device,
    pub country: &'static str,
    /// Day (relative to the start) of signup; negative before the simulation.
    pub signup_day: i64,
    /// Arm of the `search_ranker` experiment: true = ltr.
    pub ltr: bool,
    /// Per-user salt for idiosyncratic book tastes.
    pub taste_salt: u64,
    pub fav_genres: [u8; 2],
}

/// The promotion planted in the data.
#[derive(Debug, Clone, Serialize)]
pub struct Promotion {
    pub promo_code: &'static str,
    pub discount_rate: f64,
    pub first_day: u32,
    pub last_day: u32,
    pub dip_last_day: u32,
    pub genres: Vec<u8>,
    pub books: Vec<u32>,
}

/// Sizes of the planted effects (written to truth.json).
#[derive(Debug, Clone, Serialize)]
pub struct Effects {
    /// Logit points added to an add-to-cart of a promoted book in the window (× segment response).
    pub promo_add_logit: f64,
    /// Logit points added to an add-to-cart of a non-promoted book of a promoted genre in the window.
    pub cannibalization_logit: f64,
    /// Logit points added to an add-to-cart of a promoted book in the days after the window.
    pub pull_forward_logit: f64,
    /// Probability that a basket with a promoted book uses the code in the window.
    pub promo_code_use: f64,
    /// Session-rate multiplier for users whose first order contains a gateway book.
    pub gateway_session_multiplier: f64,
    /// Utility bonus of gateway books for users who have not bought yet (bestseller appeal).
    pub gateway_first_appeal: f64,
    /// Probability that B is added when A is added to the cart.
    pub pair_probability: f64,
    /// Probability of refusing an out-of-order series volume (the earlier volume is viewed instead).
    pub series_in_order_probability: f64,
    /// Probability per session that a user with series progress looks at the next volume.
    pub series_next_volume_probability: f64,
    /// Logit points added to the order decision when the session clicked a recommendation.
    pub rec_click_order_logit: f64,
    /// Logit points added to the order decision when the session read a review.
    pub review_order_logit: f64,
    /// Logit of P(recommendation click | shown) per unit of visible intent (device, logged in: the
    /// observable confounder, see `Sess::visible_intent`).
    pub rec_click_intent_slope: f64,
    /// Standard deviation of the ltr ranker's error on the true relevance (logit points).
    pub ltr_noise_sd: f64,
    /// Probability that the session after one that abandoned its cart starts at the cart.
    pub cart_return_probability: f64,
}

pub const EFFECTS: Effects = Effects {
    promo_add_logit: 0.9,
    cannibalization_logit: -0.7,
    pull_forward_logit: -0.8,
    promo_code_use: 0.85,
    gateway_session_multiplier: 1.6,
    gateway_first_appeal: 1.0,
    pair_probability: 0.6,
    series_in_order_probability: 0.99,
    series_next_volume_probability: 0.35,
    rec_click_order_logit: 0.6,
    review_order_logit: 0.3,
    rec_click_intent_slope: 2.0,
    ltr_noise_sd: 0.25,
    cart_return_probability: 0.35,
};

/// Everything shared by all users during a run.
#[derive(Debug)]
pub struct World {
    pub seed: u64,
    pub effects: Effects,
    pub days: u32,
    pub users: u32,
    pub test_users: u32,
    pub start: NaiveDate,
    pub catalog: Catalog,
    pub segments: Vec<SegmentParams>,
    /// Spend in cents per day and marketing channel.
    pub spend_cents: Vec<[i64; 4]>,
    /// Session-rate factor per day (weekday × marketing).
    pub day_factor: Vec<f64>,
    /// Source weights per day.
    pub source_weights: Vec<[f64; 6]>,
    pub promo: Promotion,
    pub promoted: Vec<bool>,
    pub promo_genre: [bool; N_GENRES],
    pub gateway: Vec<bool>,
    pub gateway_books: Vec<u32>,
    /// For book A (index), the book B bought with it.
    pub pair_of: Vec<Option<u32>>,
    pub pairs: Vec<(u32, u32)>,
    /// Date strings `YYYY-MM-DD` from day -2 to day `days + 40`.
    dates: Vec<[u8; 10]>,
}

impl World {
    pub fn new(cfg: &SimConfig, catalog: Catalog) -> World {
        let seed = cfg.seed;
        let days = cfg.days;
        let mut rng = rng_for(seed, 0x3031D, 0, 0);
        // Promotion: a window about 40% into the run, then a pull-forward dip.
        let first_day = (days * 2 / 5).min(days.saturating_sub(1));
        let len = (days / 4).clamp(1, 4);
        let last_day = (first_day + len - 1).min(days.saturating_sub(1).max(first_day));
        let dip_last_day = last_day + 4;
        let mut candidate_genres = [FANTASY, MYSTERY, ROMANCE, YOUNG_ADULT, SCIFI];
        candidate_genres.shuffle(&mut rng);
        let genres = vec![candidate_genres[0], candidate_genres[1]];
        let mut books = Vec::new();
        for &g in &genres {
            let pool: Vec<u32> = catalog.by_genre[g as usize]
                .iter()
                .skip(3)
                .take(60)
                .copied()
                .collect();
            books.extend(pool.choose_multiple(&mut rng, 12).copied());
        }
        books.sort_unstable();
        let mut promoted = vec![false; catalog.books.len()];
        for &b in &books {
            promoted[b as usize] = true;
        }
        let mut promo_genre = [false; N_GENRES];
        for &g in &genres {
            promo_genre[g as usize] = true;
        }
        let promo = Promotion {
            promo_code: "FALLREADS20",
            discount_rate: 0.20,
            first_day,
            last_day,
            dip_last_day,
            genres,
            books,
        };
        // Gateway books: five of the 40 most popular (not promoted, not a later series volume).
        let mut gateway_books: Vec<u32> = catalog.popular[..40]
            .iter()
            .copied()
            .filter(|&b| !promoted[b as usize] && !catalog.is_later_volume(b))
            .collect::<Vec<_>>()
            .choose_multiple(&mut rng, 5)
            .copied()
            .collect();
        gateway_books.sort_unstable();
        let mut gateway = vec![false; catalog.books.len()];
        for &b in &gateway_books {
            gateway[b as usize] = true;
        }
        // Bought-together pairs: A among the 150 most popular, B a popular book of its genre.
        let mut pair_of: Vec<Option<u32>> = vec![None; catalog.books.len()];
        let mut used = vec![false; catalog.books.len()];
        let mut pairs = Vec::new();
        let mut tries = 0;
        while pairs.len() < 20 && tries < 10_000 {
            tries += 1;
            let a = catalog.popular[rng.gen_range(0..150)];
            let g = catalog.books[a as usize].genre as usize;
            let pool = &catalog.by_genre[g];
            let b = pool[rng.gen_range(0..pool.len().min(300))];
            if a == b
                || used[a as usize]
                || used[b as usize]
                || catalog.is_later_volume(a)
                || catalog.is_later_volume(b)
            {
                continue;
            }
            used[a as usize] = true;
            used[b as usize] = true;
            pair_of[a as usize] = Some(b);
            pairs.push((a, b));
        }
        // Marketing spend and its pull on sessions.
        let mut spend_cents = Vec::new();
        let mut day_factor = Vec::new();
        let mut source_weights = Vec::new();
        for d in 0..days {
            let date = cfg.start + chrono::Days::new(d as u64);
            let wd = weekday_factor(date.weekday());
            let in_promo = d >= first_day && d <= last_day;
            let mut spend = [0i64; 4];
            let mut weights = SOURCE_SHARE;
            let mut traffic = 1.0;
            for c in 0..4 {
                let mut f: f64 = (0.25 * rng.sample::<f64, _>(StandardNormal)).exp();
                if c == PAID && wd > 1.05 {
                    f *= 1.2;
                }
                if in_promo {
                    f *= match c {
                        EMAIL if d == first_day => 4.0,
                        EMAIL => 2.0,
                        PAID => 1.8,
                        SOCIAL => 1.5,
                        _ => 1.0,
                    };
                }
                let dollars = SPEND_PER_1000[c] * cfg.users as f64 / 1000.0 * f;
                spend[c] = (dollars * 100.0).round() as i64;
                weights[c] *= f;
                traffic += SOURCE_SHARE[c] * (f - 1.0);
            }
            spend_cents.push(spend);
            day_factor.push(wd * traffic);
            source_weights.push(weights);
        }
        let dates = (-2..days as i64 + 40)
            .map(|d| {
                let date = cfg.start + chrono::TimeDelta::days(d);
                let mut out = [0u8; 10];
                out.copy_from_slice(date.format("%Y-%m-%d").to_string().as_bytes());
                out
            })
            .collect();
        World {
            seed,
            effects: cfg.effects.clone(),
            days,
            users: cfg.users,
            test_users: (cfg.users / 100).max(1),
            start: cfg.start,
            catalog,
            segments: segment_params(),
            spend_cents,
            day_factor,
            source_weights,
            promo,
            promoted,
            promo_genre,
            gateway,
            gateway_books,
            pair_of,
            pairs,
            dates,
        }
    }

    /// `YYYY-MM-DD` of a day relative to the start (−2 ..= days + 39).
    pub fn date_bytes(&self, day: i64) -> &[u8; 10] {
        let i = (day + 2).clamp(0, self.dates.len() as i64 - 1) as usize;
        &self.dates[i]
    }

    pub fn date(&self, day: u32) -> NaiveDate {
        self.start + chrono::Days::new(day as u64)
    }

    pub fn in_promo(&self, day: u32) -> bool {
        day >= self.promo.first_day && day <= self.promo.last_day
    }

    pub fn in_dip(&self, day: u32) -> bool {
        day > self.promo.last_day && day <= self.promo.dip_last_day
    }

    /// Draws the profile of a user (`anon` visitors use their own segment mix).
    pub fn profile(&self, user_id: &str, anon: bool, rng: &mut ChaCha8Rng) -> Profile {
        let r: f64 = rng.r#gen();
        let mut acc = 0.0;
        let mut seg = &self.segments[SEGMENTS.len() - 1];
        for s in &self.segments {
            acc += if anon { s.anon_share } else { s.share };
            if r < acc {
                seg = s;
                break;
            }
        }
        let mut affinity = [0f32; N_GENRES];
        for a in affinity.iter_mut() {
            *a = (-0.4 + 0.45 * rng.sample::<f64, _>(StandardNormal)) as f32;
        }
        for (name, lift) in &seg.favourite_genres {
            if let Some(g) = crate::catalog::GENRES.iter().position(|n| n == name) {
                affinity[g] += *lift as f32;
            }
        }
        let mut order: Vec<u8> = (0..N_GENRES as u8).collect();
        order.sort_by(|&a, &b| affinity[b as usize].total_cmp(&affinity[a as usize]));
        let dev: f64 = rng.r#gen();
        let device = if dev < 0.45 {
            Device::Desktop
        } else if dev < 0.9 {
            Device::Mobile
        } else {
            Device::Tablet
        };
        let cr: f64 = rng.r#gen();
        let mut acc = 0.0;
        let mut country = COUNTRIES[0].0;
        for (c, w) in COUNTRIES {
            acc += w;
            if cr < acc {
                country = c;
                break;
            }
        }
        let signup_day = if rng.gen_bool(0.75) {
            -rng.gen_range(1..1100)
        } else {
            rng.gen_range(0..self.days.max(1) as i64)
        };
        Profile {
            segment: seg.segment,
            affinity,
            price_sensitivity: seg.price_sensitivity * rng.gen_range(0.7..1.3),
            intent: seg.intent + rng.gen_range(-0.4..0.4),
            sessions_per_day: seg.sessions_per_day
                * (0.6 * rng.sample::<f64, _>(StandardNormal) - 0.18).exp(),
            promo_response: seg.promo_response,
            multi_quantity: seg.multi_quantity,
            device,
            country,
            signup_day,
            ltr: ltr_arm(user_id),
            taste_salt: rng.r#gen(),
            fav_genres: [order[0], order[1]],
        }
    }
}

/// The `search_ranker` arm of a user: a salted hash of the user id, 50/50.
pub fn ltr_arm(user_id: &str) -> bool {
    hash_str(&format!("search_ranker:{user_id}")) & 1 == 1
}

/// Ways of asking for a genre in the search box.
pub fn genre_query_words(g: u8) -> &'static [&'static str] {
    match g {
        FANTASY => &["fantasy", "epic fantasy", "fantasy books", "magic"],
        SCIFI => &[
            "science fiction",
            "sci fi",
            "space opera",
            "science fiction classics",
        ],
        MYSTERY => &[
            "mystery",
            "crime thriller",
            "detective mystery",
            "mystery books",
        ],
        ROMANCE => &["romance", "romance novels", "love story"],
        HISTORY => &["history", "world war history", "history books"],
        BIOGRAPHY => &["biography", "memoir", "biography books"],
        YOUNG_ADULT => &["young adult", "ya books", "young adult fantasy"],
        CLASSICS => &["classics", "classic literature", "classics books"],
        HORROR => &["horror", "horror novels", "ghost stories"],
        BUSINESS => &["business", "business books", "leadership"],
        CHILDRENS => &["children's books", "kids books", "picture books children's"],
        _ => &["poetry", "poems", "poetry books"],
    }
}
