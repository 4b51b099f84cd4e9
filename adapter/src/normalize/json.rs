//! Typed, path-aware reads from a parsed JSON body.
//!
//! Every read says where it looked, so an error names the field
//! (`$.data.object.amount`) without echoing what the payload held there.

use prost_types::Timestamp;
use serde_json::{Map, Value};

use super::NormalizeError;

/// A place in the body: the value there (`None` when absent or `null`) and
/// its path.
#[derive(Debug, Clone)]
pub(crate) struct At<'a> {
    value: Option<&'a Value>,
    path: String,
    /// An ancestor that was neither absent nor of the container type the
    /// descent needed: its path and the type that was expected. Reported on
    /// the first typed read, so `a.b.c` on `{"a": 5}` says `$.a` is wrong,
    /// not that `$.a.b.c` is missing.
    bad_parent: Option<(String, &'static str)>,
}

impl<'a> At<'a> {
    /// The whole body.
    pub(crate) fn root(value: &'a Value) -> Self {
        At {
            value: Some(value),
            path: "$".to_owned(),
            bad_parent: None,
        }
    }

    /// The member `key` of this object.
    pub(crate) fn get(&self, key: &str) -> At<'a> {
        let path = format!("{}.{key}", self.path);
        match (&self.bad_parent, self.value) {
            (Some(bad), _) => self.child(None, path, Some(bad.clone())),
            (None, Some(Value::Object(map))) => self.child(present(map.get(key)), path, None),
            (None, None) => self.child(None, path, None),
            (None, Some(_)) => self.child(None, path, Some((self.path.clone(), "object"))),
        }
    }

    /// The element `index` of this array.
    pub(crate) fn index(&self, index: usize) -> At<'a> {
        let path = format!("{}[{index}]", self.path);
        match (&self.bad_parent, self.value) {
            (Some(bad), _) => self.child(None, path, Some(bad.clone())),
            (None, Some(Value::Array(items))) => self.child(present(items.get(index)), path, None),
            (None, None) => self.child(None, path, None),
            (None, Some(_)) => self.child(None, path, Some((self.path.clone(), "array"))),
        }
    }

    fn child(
        &self,
        value: Option<&'a Value>,
        path: String,
        bad_parent: Option<(String, &'static str)>,
    ) -> At<'a> {
        At {
            value,
            path,
            bad_parent,
        }
    }

    /// Where this is, as a JSON path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The raw value, `None` when absent or `null`.
    pub(crate) fn value(&self) -> Result<Option<&'a Value>, NormalizeError> {
        match &self.bad_parent {
            Some((path, expected)) => Err(NormalizeError::WrongType {
                path: path.clone(),
                expected,
            }),
            None => Ok(self.value),
        }
    }

    /// An error saying this field is missing.
    pub(crate) fn missing(&self) -> NormalizeError {
        NormalizeError::MissingField {
            path: self.path.clone(),
        }
    }

    /// An error saying this field holds the wrong JSON type.
    pub(crate) fn wrong_type(&self, expected: &'static str) -> NormalizeError {
        NormalizeError::WrongType {
            path: self.path.clone(),
            expected,
        }
    }

    /// An error saying this field's value is not acceptable.
    pub(crate) fn invalid(&self, reason: impl Into<String>) -> NormalizeError {
        NormalizeError::InvalidValue {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// This object itself; absent is an error.
    pub(crate) fn object(&self) -> Result<&'a Map<String, Value>, NormalizeError> {
        match self.value()? {
            Some(Value::Object(map)) => Ok(map),
            Some(_) => Err(self.wrong_type("object")),
            None => Err(self.missing()),
        }
    }

    /// An optional string. Empty strings read as absent: providers send ""
    /// for "not set" as often as `null`.
    pub(crate) fn str(&self) -> Result<Option<&'a str>, NormalizeError> {
        match self.value()? {
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong_type("string")),
            None => Ok(None),
        }
    }

    /// A required, non-empty string.
    pub(crate) fn req_str(&self) -> Result<&'a str, NormalizeError> {
        self.str()?.ok_or_else(|| self.missing())
    }

    /// An optional id given as a string, or as an object with a string `id`
    /// (Stripe's expandable references: `"pi_…"` or `{"id": "pi_…", …}`).
    pub(crate) fn id(&self) -> Result<Option<&'a str>, NormalizeError> {
        match self.value()? {
            Some(Value::Object(_)) => self.get("id").str(),
            _ => self.str(),
        }
    }

    /// An optional integer. Floats and numeric strings are the wrong type.
    pub(crate) fn i64(&self) -> Result<Option<i64>, NormalizeError> {
        match self.value()? {
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) => Ok(Some(v)),
                None if n.is_u64() => Err(self.invalid("does not fit in 64 bits")),
                None => Err(self.wrong_type("integer")),
            },
            Some(_) => Err(self.wrong_type("integer")),
            None => Ok(None),
        }
    }

    /// A required integer.
    pub(crate) fn req_i64(&self) -> Result<i64, NormalizeError> {
        self.i64()?.ok_or_else(|| self.missing())
    }

    /// An optional integer that is at least zero (an amount in minor units).
    pub(crate) fn non_negative(&self) -> Result<Option<i64>, NormalizeError> {
        match self.i64()? {
            Some(v) if v < 0 => Err(self.invalid("must not be negative")),
            other => Ok(other),
        }
    }

    /// An optional integer given as a JSON integer or a string of digits
    /// (some providers quote their numbers, e.g. Glassfy's older payloads).
    pub(crate) fn i64_lenient(&self) -> Result<Option<i64>, NormalizeError> {
        match self.value()? {
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => parse_i64(s)
                .map(Some)
                .ok_or_else(|| self.invalid("not an integer")),
            _ => self.i64(),
        }
    }

    /// An optional number.
    pub(crate) fn f64(&self) -> Result<Option<f64>, NormalizeError> {
        match self.value()? {
            Some(Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong_type("number")),
            Some(_) => Err(self.wrong_type("number")),
            None => Ok(None),
        }
    }

    /// An optional boolean.
    pub(crate) fn bool(&self) -> Result<Option<bool>, NormalizeError> {
        match self.value()? {
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong_type("boolean")),
            None => Ok(None),
        }
    }

    /// The elements of an optional array (absent reads as empty).
    pub(crate) fn items(&self) -> Result<Vec<At<'a>>, NormalizeError> {
        match self.value()? {
            Some(Value::Array(items)) => Ok((0..items.len()).map(|i| self.index(i)).collect()),
            Some(_) => Err(self.wrong_type("array")),
            None => Ok(Vec::new()),
        }
    }

    /// An optional ISO 4217 code, upper-cased.
    pub(crate) fn currency(&self) -> Result<Option<String>, NormalizeError> {
        match self.str()? {
            Some(code) => currency_code(code)
                .map(Some)
                .ok_or_else(|| self.invalid("not a three-letter ISO 4217 code")),
            None => Ok(None),
        }
    }
}

fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

fn parse_i64(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Upper-cases a three-letter code; anything else is not a currency.
pub(crate) fn currency_code(code: &str) -> Option<String> {
    (code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| code.to_ascii_uppercase())
}

/// The range `google.protobuf.Timestamp` allows (years 1 to 9999); outside
/// it the fulfilment side could not store the time.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

fn in_range(ts: Timestamp, path: &str) -> Result<Timestamp, NormalizeError> {
    if (MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds) {
        Ok(ts)
    } else {
        Err(invalid_time(path, "time out of range"))
    }
}

fn invalid_time(path: &str, reason: &str) -> NormalizeError {
    NormalizeError::InvalidValue {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Unix seconds to a timestamp; `path` names the field in errors.
pub(crate) fn from_unix_seconds(seconds: i64, path: &str) -> Result<Timestamp, NormalizeError> {
    in_range(Timestamp { seconds, nanos: 0 }, path)
}

/// Unix milliseconds to a timestamp; `path` names the field in errors.
pub(crate) fn from_unix_millis(millis: i64, path: &str) -> Result<Timestamp, NormalizeError> {
    let nanos = i32::try_from(millis.rem_euclid(1000) * 1_000_000)
        .map_err(|_| invalid_time(path, "time out of range"))?;
    let ts = Timestamp {
        seconds: millis.div_euclid(1000),
        nanos,
    };
    in_range(ts, path)
}

/// An RFC 3339 string (`2024-05-14T09:11:54.338Z`, offsets allowed) to a
/// timestamp; `path` names the field in errors.
pub(crate) fn from_rfc3339(text: &str, path: &str) -> Result<Timestamp, NormalizeError> {
    let ts: Timestamp = text
        .parse()
        .map_err(|_| invalid_time(path, "not an RFC 3339 date-time"))?;
    in_range(ts, path)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_name_the_field() {
        let body = json!({"data": {"object": {"refunds": {"data": [{"id": 5}]}}}});
        let root = At::root(&body);
        let id = root
            .get("data")
            .get("object")
            .get("refunds")
            .get("data")
            .index(0)
            .get("id");
        assert_eq!(id.path(), "$.data.object.refunds.data[0].id");
        let err = id.str().unwrap_err();
        assert_eq!(err.code(), "wrong_type");
        assert!(err.to_string().contains("$.data.object.refunds.data[0].id"));
    }

    #[test]
    fn a_scalar_where_an_object_belongs_is_reported_at_the_scalar() {
        let body = json!({"data": 5});
        let root = At::root(&body);
        let err = root.get("data").get("object").get("id").str().unwrap_err();
        assert_eq!(
            err,
            NormalizeError::WrongType {
                path: "$.data".into(),
                expected: "object"
            }
        );
    }

    #[test]
    fn null_and_empty_read_as_absent() {
        let body = json!({"a": null, "b": ""});
        let root = At::root(&body);
        assert_eq!(root.get("a").str().unwrap(), None);
        assert_eq!(root.get("b").str().unwrap(), None);
        assert_eq!(root.get("b").req_str().unwrap_err().code(), "missing_field");
    }

    #[test]
    fn integers_are_strict_and_bounded() {
        let body = json!({"f": 1.5, "s": "10", "big": u64::MAX, "neg": -1});
        let root = At::root(&body);
        assert_eq!(root.get("f").i64().unwrap_err().code(), "wrong_type");
        assert_eq!(root.get("s").i64().unwrap_err().code(), "wrong_type");
        assert_eq!(root.get("s").i64_lenient().unwrap(), Some(10));
        assert_eq!(root.get("big").i64().unwrap_err().code(), "invalid_value");
        assert_eq!(
            root.get("neg").non_negative().unwrap_err().code(),
            "invalid_value"
        );
    }

    #[test]
    fn times_outside_the_protobuf_range_are_refused() {
        let at = "$.t";
        assert!(from_unix_seconds(MAX_SECONDS + 1, at).is_err());
        assert!(from_unix_millis(i64::MAX, at).is_err());
        assert_eq!(
            from_unix_millis(-1, at).unwrap(),
            Timestamp {
                seconds: -1,
                nanos: 999_000_000
            }
        );
        assert_eq!(
            from_rfc3339("2024-05-14T09:11:54.338+02:00", at).unwrap(),
            Timestamp {
                seconds: 1_715_670_714,
                nanos: 338_000_000
            }
        );
        assert!(from_rfc3339("yesterday", at).is_err());
    }
}
