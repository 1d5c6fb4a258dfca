//! Typed bookstore events and their strict validation (`contracts/events.md`).
//!
//! Every way an event enters Quire (a JSON Lines file, the HTTP intake) goes through
//! [`parse_line`] or [`parse_value`], so a line is valid or invalid for the same reason
//! everywhere. An invalid event yields an [`Invalid`] whose text names the field and the rule,
//! for example `order_placed.items[2].quantity: must be an integer >= 1`.
//!
//! Fields the contract does not know are ignored, as the contract asks of readers.
//!
//! The serde form of [`Event`] (`Serialize`/`Deserialize`) is Quire's internal form of an
//! already validated event (the live path's event bus carries it in MessagePack), not the
//! contract's JSON: JSON from outside goes through [`parse_line`] or [`parse_value`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod json;
mod validate;

pub use validate::{parse_line, parse_value};

/// Why an event was rejected: a field path and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Invalid {
    /// Dotted path of the offending field, prefixed with the event type when it is known
    /// (`order_placed.items[2].quantity`), or `line` when the line itself is unreadable.
    pub field: String,
    /// The rule, in words (`must be an integer >= 1`).
    pub rule: String,
}

impl Invalid {
    pub(crate) fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The human-readable reason stored with a bad row.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in contract order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            pub(crate) fn expected() -> String {
                let names: Vec<String> = Self::ALL.iter().map(|v| format!("\"{}\"", v.as_str())).collect();
                names.join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(
    /// The `event_type` values of the contract.
    EventType {
        PageView => "page_view",
        ProductView => "product_view",
        ReviewViewed => "review_viewed",
        SearchPerformed => "search_performed",
        SearchResultClicked => "search_result_clicked",
        RecommendationShown => "recommendation_shown",
        RecommendationClicked => "recommendation_clicked",
        AddToCart => "add_to_cart",
        RemoveFromCart => "remove_from_cart",
        CheckoutStarted => "checkout_started",
        OrderPlaced => "order_placed",
        OrderReturned => "order_returned",
    }
);

string_enum!(
    /// `device`.
    Device { Desktop => "desktop", Mobile => "mobile", Tablet => "tablet" }
);

string_enum!(
    /// `traffic_source`.
    TrafficSource {
        Organic => "organic",
        Paid => "paid",
        Social => "social",
        Direct => "direct",
        Email => "email",
        Referral => "referral",
    }
);

string_enum!(
    /// `page_view.page`.
    Page {
        Home => "home",
        Search => "search",
        Category => "category",
        Product => "product",
        Cart => "cart",
        Checkout => "checkout",
        Account => "account",
        Other => "other",
    }
);

string_enum!(
    /// `product_view.via`.
    Via { Search => "search", Recommendation => "recommendation", Browse => "browse", Direct => "direct" }
);

string_enum!(
    /// `search_performed.ranker`.
    Ranker { Bm25 => "bm25", Ltr => "ltr" }
);

string_enum!(
    /// Recommendation `module`.
    Module { Similar => "similar", BoughtTogether => "bought_together", ForYou => "for_you", Popular => "popular" }
);

/// One line of an `order_placed` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    pub book_id: String,
    pub quantity: i64,
    pub unit_price: f64,
}

/// The type-specific fields of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Payload {
    PageView {
        page: Page,
    },
    ProductView {
        book_id: String,
        via: Via,
    },
    ReviewViewed {
        book_id: String,
    },
    SearchPerformed {
        search_id: String,
        query: String,
        results_count: i64,
        ranker: Ranker,
        results: Vec<String>,
        result_scores: Option<Vec<f64>>,
    },
    SearchResultClicked {
        search_id: String,
        book_id: String,
        position: i64,
    },
    RecommendationShown {
        module: Module,
        book_ids: Vec<String>,
    },
    RecommendationClicked {
        module: Module,
        book_id: String,
        position: i64,
    },
    AddToCart {
        book_id: String,
        quantity: i64,
        unit_price: f64,
    },
    RemoveFromCart {
        book_id: String,
        quantity: i64,
    },
    CheckoutStarted,
    OrderPlaced {
        order_id: String,
        items: Vec<OrderItem>,
        total_price: f64,
        discount: f64,
        promo_code: Option<String>,
        fees: f64,
    },
    OrderReturned {
        order_id: String,
        refund_amount: f64,
    },
}

impl Payload {
    /// The event type this payload belongs to.
    pub fn event_type(&self) -> EventType {
        match self {
            Payload::PageView { .. } => EventType::PageView,
            Payload::ProductView { .. } => EventType::ProductView,
            Payload::ReviewViewed { .. } => EventType::ReviewViewed,
            Payload::SearchPerformed { .. } => EventType::SearchPerformed,
            Payload::SearchResultClicked { .. } => EventType::SearchResultClicked,
            Payload::RecommendationShown { .. } => EventType::RecommendationShown,
            Payload::RecommendationClicked { .. } => EventType::RecommendationClicked,
            Payload::AddToCart { .. } => EventType::AddToCart,
            Payload::RemoveFromCart { .. } => EventType::RemoveFromCart,
            Payload::CheckoutStarted => EventType::CheckoutStarted,
            Payload::OrderPlaced { .. } => EventType::OrderPlaced,
            Payload::OrderReturned { .. } => EventType::OrderReturned,
        }
    }
}

/// A valid event: the envelope and its typed payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    /// Event time, converted to UTC (the contract's windows are all in UTC).
    #[serde(with = "utc_parts")]
    pub event_timestamp: DateTime<Utc>,
    pub user_id: String,
    pub device: Device,
    pub traffic_source: Option<TrafficSource>,
    pub is_test: bool,
    pub experiments: Option<BTreeMap<String, String>>,
    pub payload: Payload,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// The `experiments` object as compact JSON text (how the lake stores it).
    pub fn experiments_json(&self) -> Option<String> {
        self.experiments.as_ref().map(|m| {
            let obj: Map<String, Value> = m
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            Value::Object(obj).to_string()
        })
    }
}

/// An instant as (seconds, nanoseconds) since the Unix epoch: exact for every instant chrono
/// holds, and cheaper to write and read than RFC 3339 text (chrono's own serde form).
mod utc_parts {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        (t.timestamp(), t.timestamp_subsec_nanos()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let (secs, nanos) = <(i64, u32)>::deserialize(d)?;
        DateTime::from_timestamp(secs, nanos)
            .ok_or_else(|| serde::de::Error::custom(format!("no such instant: {secs}s {nanos}ns")))
    }
}

#[cfg(test)]
mod tests;
