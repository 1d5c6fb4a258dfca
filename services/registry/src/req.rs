//! Request fields as MLflow's client sends them: in the query string for GET (repeated keys
//! for lists), in a JSON body for the other methods. Protobuf's JSON mapping writes 64-bit
//! integers as strings and non-finite doubles as `"NaN"`/`"Infinity"`, so readers accept both
//! forms; a field of the wrong type is an `INVALID_PARAMETER_VALUE` naming it.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::Method;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The fields of one request (or of one object inside it, e.g. a metric of a batch).
#[derive(Debug, Default)]
pub struct Fields(Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let mut fields = Map::new();
        if let Some(query) = req.uri().query() {
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                let v = Value::String(v.into_owned());
                match fields.get_mut(k.as_ref()) {
                    Some(Value::Array(values)) => values.push(v),
                    Some(first) => *first = Value::Array(vec![first.take(), v]),
                    None => {
                        fields.insert(k.into_owned(), v);
                    }
                }
            }
        }
        if req.method() != Method::GET {
            let body = Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::invalid(format!("reading the request body: {e}")))?;
            if !body.iter().all(u8::is_ascii_whitespace) {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(map)) => fields.extend(map),
                    Ok(_) => {
                        return Err(ApiError::invalid("the request body must be a JSON object"));
                    }
                    Err(e) => {
                        return Err(ApiError::invalid(format!(
                            "the request body is not valid JSON: {e}"
                        )));
                    }
                }
            }
        }
        Ok(Fields(fields))
    }
}

fn wrong(key: &str, want: &str, got: &Value) -> ApiError {
    ApiError::invalid(format!("field {key:?} must be {want}, got {got}"))
}

impl Fields {
    /// Fields from a JSON object.
    #[cfg(test)]
    pub fn from_map(map: Map<String, Value>) -> Self {
        Fields(map)
    }

    /// An optional string; `null` counts as absent.
    pub fn str(&self, key: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong(key, "a string", other)),
        }
    }

    /// A required, non-empty string.
    pub fn required(&self, key: &str) -> Result<&str, ApiError> {
        match self.str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(ApiError::invalid(format!(
                "missing value for required parameter {key:?}"
            ))),
        }
    }

    /// The first of several names that is present (`run_id`, then `run_uuid`).
    pub fn required_any(&self, keys: &[&str]) -> Result<&str, ApiError> {
        for key in keys {
            if let Some(s) = self.str(key)?.filter(|s| !s.is_empty()) {
                return Ok(s);
            }
        }
        Err(ApiError::invalid(format!(
            "missing value for required parameter {:?}",
            keys.join(" or ")
        )))
    }

    /// An optional integer, as a JSON number or a decimal string.
    pub fn i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong(key, "an integer", &Value::Number(n.clone()))),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| wrong(key, "an integer", &Value::String(s.clone()))),
            Some(other) => Err(wrong(key, "an integer", other)),
        }
    }

    /// A required integer.
    pub fn required_i64(&self, key: &str) -> Result<i64, ApiError> {
        self.i64(key)?.ok_or_else(|| {
            ApiError::invalid(format!("missing value for required parameter {key:?}"))
        })
    }

    /// A required double: a JSON number, or a string (`"NaN"`, `"Infinity"`, `"-Infinity"`, or
    /// a decimal).
    pub fn required_f64(&self, key: &str) -> Result<f64, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Err(ApiError::invalid(format!(
                "missing value for required parameter {key:?}"
            ))),
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| wrong(key, "a number", &Value::Number(n.clone()))),
            Some(Value::String(s)) => match s.as_str() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => other
                    .parse()
                    .map_err(|_| wrong(key, "a number", &Value::String(s.clone()))),
            },
            Some(other) => Err(wrong(key, "a number", other)),
        }
    }

    /// A list of strings: an array, or one string (a query string's single value).
    pub fn strings(&self, key: &str) -> Result<Vec<String>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(wrong(key, "a list of strings", other)),
                })
                .collect(),
            Some(other) => Err(wrong(key, "a list of strings", other)),
        }
    }

    /// A list of objects (`metrics`, `params`, `tags`…), each readable as [`Fields`].
    pub fn objects(&self, key: &str) -> Result<Vec<Fields>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(Fields(m.clone())),
                    other => Err(wrong(key, "a list of objects", other)),
                })
                .collect(),
            Some(other) => Err(wrong(key, "a list of objects", other)),
        }
    }

    /// `key`/`value` objects as pairs (params and tags); a missing value is an empty string.
    pub fn pairs(&self, key: &str) -> Result<Vec<(String, String)>, ApiError> {
        self.objects(key)?
            .iter()
            .map(|o| {
                Ok((
                    o.required("key")?.to_owned(),
                    o.str("value")?.unwrap_or_default().to_owned(),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        match v {
            Value::Object(m) => Fields::from_map(m),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn integers_come_as_numbers_or_strings() {
        let f = fields(json!({"a": 5, "b": "7", "c": "x", "d": 1.5, "e": ""}));
        assert_eq!(f.i64("a").unwrap(), Some(5));
        assert_eq!(f.i64("b").unwrap(), Some(7));
        assert_eq!(f.i64("e").unwrap(), None);
        assert_eq!(f.i64("missing").unwrap(), None);
        let err = f.i64("c").unwrap_err();
        assert_eq!(err.code, "INVALID_PARAMETER_VALUE");
        assert!(err.message.contains("\"c\""), "{}", err.message);
        assert!(f.i64("d").is_err());
    }

    #[test]
    fn doubles_accept_protobuf_special_values() {
        let f = fields(json!({"a": 0.5, "n": "NaN", "i": "-Infinity", "s": "2.5", "x": true}));
        assert_eq!(f.required_f64("a").unwrap(), 0.5);
        assert!(f.required_f64("n").unwrap().is_nan());
        assert_eq!(f.required_f64("i").unwrap(), f64::NEG_INFINITY);
        assert_eq!(f.required_f64("s").unwrap(), 2.5);
        assert!(f.required_f64("x").is_err());
        assert!(f.required_f64("missing").is_err());
    }

    #[test]
    fn lists_and_pairs() {
        let f = fields(json!({
            "one": "a", "many": ["a", "b"],
            "tags": [{"key": "k", "value": "v"}, {"key": "e"}],
            "bad": [{"value": "no key"}]
        }));
        assert_eq!(f.strings("one").unwrap(), ["a"]);
        assert_eq!(f.strings("many").unwrap(), ["a", "b"]);
        assert!(f.strings("none").unwrap().is_empty());
        assert_eq!(
            f.pairs("tags").unwrap(),
            [("k".into(), "v".into()), ("e".into(), String::new())]
        );
        assert!(f.pairs("bad").is_err());
    }

    #[test]
    fn run_id_or_run_uuid() {
        let f = fields(json!({"run_uuid": "u", "run_id": ""}));
        assert_eq!(f.required_any(&["run_id", "run_uuid"]).unwrap(), "u");
        assert!(
            fields(json!({}))
                .required_any(&["run_id", "run_uuid"])
                .is_err()
        );
    }
}
