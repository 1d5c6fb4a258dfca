//! Field-by-field validation of one JSON event against the contract.
//!
//! Written by hand over `serde_json::Value` rather than with `#[derive(Deserialize)]`: serde's
//! errors name neither the event type nor the rule ("invalid type: floating point `1.5`,
//! expected i64 at line 1 column 80"), and the contract wants a reason a person can act on.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::{Map, Value};

use crate::{
    Device, Event, EventType, Invalid, Module, OrderItem, Page, Payload, Ranker, TrafficSource, Via,
};

const MAX_ID_CHARS: usize = 128;

/// 2^63: the whole floats `x` with `-I64_BOUND <= x < I64_BOUND` are exactly the i64 values
/// a float can hold.
const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;

/// Parses and validates one JSON Lines line.
pub fn parse_line(line: &str) -> Result<Event, Invalid> {
    let value = crate::json::from_str(line)
        .map_err(|e| Invalid::new("line", format!("not valid JSON ({e})")))?;
    parse_value(&value)
}

/// Validates one already-parsed JSON value (the HTTP intake's path).
pub fn parse_value(value: &Value) -> Result<Event, Invalid> {
    let obj = value
        .as_object()
        .ok_or_else(|| Invalid::new("line", "must be a JSON object"))?;
    let envelope = Fields {
        obj,
        prefix: String::new(),
    };
    let type_text = envelope.string("event_type")?;
    let event_type = EventType::parse(type_text).ok_or_else(|| {
        Invalid::new(
            "event_type",
            format!(
                "unknown event type \"{type_text}\" (expected one of {})",
                EventType::expected()
            ),
        )
    })?;
    let f = Fields {
        obj,
        prefix: format!("{}.", event_type.as_str()),
    };
    let event_id = f.id("event_id")?;
    let event_timestamp = f.timestamp("event_timestamp")?;
    let user_id = f.id("user_id")?;
    let device = f.enumerated("device", Device::parse, Device::expected)?;
    let traffic_source = f.opt_enumerated(
        "traffic_source",
        TrafficSource::parse,
        TrafficSource::expected,
    )?;
    let is_test = f.opt_bool("is_test")?.unwrap_or(false);
    let experiments = f.opt_string_map("experiments")?;
    let payload = payload(event_type, &f)?;
    Ok(Event {
        event_id,
        event_timestamp,
        user_id,
        device,
        traffic_source,
        is_test,
        experiments,
        payload,
    })
}

fn payload(event_type: EventType, f: &Fields<'_>) -> Result<Payload, Invalid> {
    Ok(match event_type {
        EventType::PageView => Payload::PageView {
            page: f.enumerated("page", Page::parse, Page::expected)?,
        },
        EventType::ProductView => Payload::ProductView {
            book_id: f.key("book_id")?,
            via: f.enumerated("via", Via::parse, Via::expected)?,
        },
        EventType::ReviewViewed => Payload::ReviewViewed {
            book_id: f.key("book_id")?,
        },
        EventType::SearchPerformed => {
            let results = f.key_array("results", 0)?;
            let result_scores = f.opt_number_array("result_scores")?;
            if let Some(scores) = &result_scores
                && scores.len() != results.len()
            {
                return Err(f.invalid(
                    "result_scores",
                    format!(
                        "must have the same length as results ({} scores for {} results)",
                        scores.len(),
                        results.len()
                    ),
                ));
            }
            Payload::SearchPerformed {
                search_id: f.key("search_id")?,
                query: f.string("query")?.to_owned(),
                results_count: f.integer("results_count", 0)?,
                ranker: f.enumerated("ranker", Ranker::parse, Ranker::expected)?,
                results,
                result_scores,
            }
        }
        EventType::SearchResultClicked => Payload::SearchResultClicked {
            search_id: f.key("search_id")?,
            book_id: f.key("book_id")?,
            position: f.integer("position", 1)?,
        },
        EventType::RecommendationShown => Payload::RecommendationShown {
            module: f.enumerated("module", Module::parse, Module::expected)?,
            book_ids: f.key_array("book_ids", 1)?,
        },
        EventType::RecommendationClicked => Payload::RecommendationClicked {
            module: f.enumerated("module", Module::parse, Module::expected)?,
            book_id: f.key("book_id")?,
            position: f.integer("position", 1)?,
        },
        EventType::AddToCart => Payload::AddToCart {
            book_id: f.key("book_id")?,
            quantity: f.integer("quantity", 1)?,
            unit_price: f.non_negative("unit_price")?,
        },
        EventType::RemoveFromCart => Payload::RemoveFromCart {
            book_id: f.key("book_id")?,
            quantity: f.integer("quantity", 1)?,
        },
        EventType::CheckoutStarted => Payload::CheckoutStarted,
        EventType::OrderPlaced => Payload::OrderPlaced {
            order_id: f.key("order_id")?,
            items: order_items(f)?,
            total_price: f.non_negative("total_price")?,
            discount: f.opt_non_negative("discount")?.unwrap_or(0.0),
            promo_code: f.opt_string("promo_code")?.map(str::to_owned),
            fees: f.opt_non_negative("fees")?.unwrap_or(0.0),
        },
        EventType::OrderReturned => Payload::OrderReturned {
            order_id: f.key("order_id")?,
            refund_amount: f.positive("refund_amount")?,
        },
    })
}

fn order_items(f: &Fields<'_>) -> Result<Vec<OrderItem>, Invalid> {
    let list = f.array("items")?;
    if list.is_empty() {
        return Err(f.invalid("items", "must have at least 1 item"));
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("items[{i}]");
            let obj = item
                .as_object()
                .ok_or_else(|| f.invalid(&path, "must be an object"))?;
            let g = Fields {
                obj,
                prefix: format!("{}{path}.", f.prefix),
            };
            Ok(OrderItem {
                book_id: g.key("book_id")?,
                quantity: g.integer("quantity", 1)?,
                unit_price: g.non_negative("unit_price")?,
            })
        })
        .collect()
}

/// The fields of one JSON object, with the path prefix used in reasons.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: String,
}

impl Fields<'_> {
    fn invalid(&self, field: &str, rule: impl Into<String>) -> Invalid {
        Invalid::new(format!("{}{field}", self.prefix), rule)
    }

    /// A present, non-null value; absent and `null` are both "missing".
    fn required(&self, field: &str) -> Result<&Value, Invalid> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Err(self.invalid(field, "is required")),
            Some(v) => Ok(v),
        }
    }

    fn optional(&self, field: &str) -> Option<&Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn string(&self, field: &str) -> Result<&str, Invalid> {
        self.required(field)?
            .as_str()
            .ok_or_else(|| self.invalid(field, "must be a string"))
    }

    fn opt_string(&self, field: &str) -> Result<Option<&str>, Invalid> {
        self.optional(field)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.invalid(field, "must be a string"))
            })
            .transpose()
    }

    /// An envelope id (`event_id`, `user_id`): 1 to [`MAX_ID_CHARS`] characters.
    fn id(&self, field: &str) -> Result<String, Invalid> {
        let s = self.string(field)?;
        check_id(s).map_err(|rule| self.invalid(field, rule))?;
        Ok(s.to_owned())
    }

    /// A reference to a book, order or search: the contract gives it no length, so any
    /// non-empty string (decided: an empty one names nothing).
    fn key(&self, field: &str) -> Result<String, Invalid> {
        let s = self.string(field)?;
        check_key(s).map_err(|rule| self.invalid(field, rule))?;
        Ok(s.to_owned())
    }

    fn timestamp(&self, field: &str) -> Result<DateTime<Utc>, Invalid> {
        let s = self.string(field)?;
        let t = DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                self.invalid(
                    field,
                    format!("must be an RFC 3339 timestamp with offset, got \"{s}\" ({e})"),
                )
            })?;
        // A leap second (23:59:60) is kept by chrono as 23:59:59 plus more than a second;
        // the hour of its partition and its stored time would then disagree. It is the next
        // second's start.
        let t = match t.nanosecond().checked_sub(1_000_000_000) {
            Some(nanos) => DateTime::from_timestamp(t.timestamp() + 1, nanos).unwrap_or(t),
            None => t,
        };
        // RFC 3339 years have four digits; an offset can carry one out of them in UTC.
        if !(0..=9999).contains(&t.year()) {
            return Err(self.invalid(
                field,
                format!("must fall within the years 0000-9999 in UTC, got \"{s}\""),
            ));
        }
        Ok(t)
    }

    fn enumerated<T>(
        &self,
        field: &str,
        parse: fn(&str) -> Option<T>,
        expected: fn() -> String,
    ) -> Result<T, Invalid> {
        let s = self.string(field)?;
        parse(s).ok_or_else(|| {
            self.invalid(field, format!("must be one of {}, got \"{s}\"", expected()))
        })
    }

    fn opt_enumerated<T>(
        &self,
        field: &str,
        parse: fn(&str) -> Option<T>,
        expected: fn() -> String,
    ) -> Result<Option<T>, Invalid> {
        if self.optional(field).is_none() {
            return Ok(None);
        }
        self.enumerated(field, parse, expected).map(Some)
    }

    fn opt_bool(&self, field: &str) -> Result<Option<bool>, Invalid> {
        self.optional(field)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| self.invalid(field, "must be true or false"))
            })
            .transpose()
    }

    fn opt_string_map(&self, field: &str) -> Result<Option<BTreeMap<String, String>>, Invalid> {
        let Some(v) = self.optional(field) else {
            return Ok(None);
        };
        let obj = v
            .as_object()
            .ok_or_else(|| self.invalid(field, "must be an object of strings"))?;
        obj.iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => Ok((k.clone(), s.to_owned())),
                None => Err(self.invalid(&format!("{field}.{k}"), "must be a string")),
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    fn integer(&self, field: &str, min: i64) -> Result<i64, Invalid> {
        let v = self.required(field)?;
        // JSON has one number type: a whole number written `2.0` or `2e0` (as a tracker that
        // holds counts in floats writes it) is the integer 2, as JSON Schema reads it. A number
        // whose f64 has a fraction (`1.5`), or a whole number outside i64, is not an integer
        // here; beyond f64's precision (`2.0000000000000001`, `1e-400`) the f64 decides.
        v.as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|x| x.fract() == 0.0 && (-I64_BOUND..I64_BOUND).contains(x))
                    .map(|x| x as i64)
            })
            .filter(|n| *n >= min)
            .ok_or_else(|| self.invalid(field, format!("must be an integer >= {min}")))
    }

    fn number(
        &self,
        field: &str,
        v: &Value,
        rule: &str,
        ok: fn(f64) -> bool,
    ) -> Result<f64, Invalid> {
        v.as_f64()
            .filter(|n| ok(*n))
            .ok_or_else(|| self.invalid(field, rule))
    }

    fn non_negative(&self, field: &str) -> Result<f64, Invalid> {
        let v = self.required(field)?;
        self.number(field, v, "must be a number >= 0", |n| n >= 0.0)
    }

    fn opt_non_negative(&self, field: &str) -> Result<Option<f64>, Invalid> {
        self.optional(field)
            .map(|v| self.number(field, v, "must be a number >= 0", |n| n >= 0.0))
            .transpose()
    }

    fn positive(&self, field: &str) -> Result<f64, Invalid> {
        let v = self.required(field)?;
        self.number(field, v, "must be a number > 0", |n| n > 0.0)
    }

    fn array(&self, field: &str) -> Result<&Vec<Value>, Invalid> {
        self.required(field)?
            .as_array()
            .ok_or_else(|| self.invalid(field, "must be an array"))
    }

    /// An array of [`Self::key`]s, at least `min_len` of them.
    fn key_array(&self, field: &str, min_len: usize) -> Result<Vec<String>, Invalid> {
        let list = self.array(field)?;
        if list.len() < min_len {
            return Err(self.invalid(field, format!("must have at least {min_len} item")));
        }
        list.iter()
            .enumerate()
            .map(|(i, v)| {
                let path = format!("{field}[{i}]");
                let s = v
                    .as_str()
                    .ok_or_else(|| self.invalid(&path, "must be a string"))?;
                check_key(s).map_err(|rule| self.invalid(&path, rule))?;
                Ok(s.to_owned())
            })
            .collect()
    }

    fn opt_number_array(&self, field: &str) -> Result<Option<Vec<f64>>, Invalid> {
        let Some(v) = self.optional(field) else {
            return Ok(None);
        };
        let list = v
            .as_array()
            .ok_or_else(|| self.invalid(field, "must be an array of numbers"))?;
        list.iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64()
                    .ok_or_else(|| self.invalid(&format!("{field}[{i}]"), "must be a number"))
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

fn check_key(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        Err("must be a non-empty string")
    } else {
        Ok(())
    }
}

fn check_id(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if (1..=MAX_ID_CHARS).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "must be a string of 1 to {MAX_ID_CHARS} characters, got {n}"
        ))
    }
}
