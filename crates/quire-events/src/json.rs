//! JSON text to a [`Value`], refusing an object that repeats a key.
//!
//! `serde_json::from_str::<Value>` keeps the last of repeated keys, so `{"event_id":"a", …,
//! "event_id":"b"}` would be a valid event with id `b`, while another reader of the same line
//! (RFC 8259 leaves it to each) may see `a`. An event must mean one thing to everyone, so such a
//! line is invalid, naming the key. serde_json has no switch for this: the visitor below builds
//! the same `Value` its own does, with the check added.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// Parses `text` as one JSON document; an object with a repeated key, at any depth, is an error
/// naming it (with its line and column).
pub(crate) fn from_str(text: &str) -> serde_json::Result<Value> {
    serde_json::from_str::<Strict>(text).map(|s| s.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As serde_json's own visitor (the parser refuses a number beyond a double before).
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            // One lookup per key (this is every ingested line's path).
            match out.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(v);
                }
                Entry::Occupied(taken) => {
                    return Err(de::Error::custom(format_args!(
                        "key \"{}\" appears more than once in an object",
                        taken.key()
                    )));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_value_as_serde_json_without_repeated_keys() {
        for text in [
            r#"{"a":1,"b":[true,null,-2,3.5,"x",{"c":{}}],"d":18446744073709551615}"#,
            r#"[1e300, -0.0, "\u00e9\ud83d\ude00"]"#,
            "null",
        ] {
            let ours = from_str(text).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
            // Key order kept as serde_json keeps it.
            assert_eq!(ours.to_string(), theirs.to_string(), "{text}");
        }
        // A number beyond a double is refused, as serde_json refuses it.
        assert!(serde_json::from_str::<Value>("[1e400]").is_err());
        assert!(from_str("[1e400]").is_err());
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        for text in [
            r#"{"event_id":"a","x":1,"event_id":"b"}"#,
            r#"{"items":[{"book_id":"b1","book_id":"b2"}]}"#,
        ] {
            let e = from_str(text).unwrap_err().to_string();
            assert!(e.contains("appears more than once"), "{text}: {e}");
        }
        let e = from_str(r#"{"a":{"k":1,"k":1}}"#).unwrap_err().to_string();
        assert!(e.contains("\"k\"") && e.contains("column"), "{e}");
    }
}
