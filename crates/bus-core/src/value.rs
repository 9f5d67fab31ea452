//! A dynamic payload value: everything Python's `cbor2` and `json` produce.
//!
//! Typed code uses serde types directly; this type is for code that must
//! handle any payload, such as the `bus` command or a dynamic handler.
//! See `docs/protocol.md`, section "Codecs".

use std::fmt;

use base64::Engine as _;
use serde::de::{
    self, Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A payload value of the CBOR data model, which includes the JSON one.
///
/// Maps keep their entries in order and may have keys of any type, as CBOR
/// allows. Integers cover the full CBOR range: every `i64` and every `u64`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `null` / `None`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer between `-2^64` and `2^64 - 1`.
    Integer(i128),
    /// A floating-point number.
    Float(f64),
    /// A byte string (CBOR only).
    Bytes(Vec<u8>),
    /// A text string.
    Text(String),
    /// An array.
    Array(Vec<Value>),
    /// A map, in the order its entries were written.
    Map(Vec<(Value, Value)>),
    /// A CBOR tagged value, such as a date (tag 0 or 1) or a bignum (tag 2 or 3).
    Tag(u64, Box<Value>),
}

impl Value {
    /// Builds a map with text keys.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::Text(k.into()), v))
                .collect(),
        )
    }

    /// The value under text key `key`, if this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text, if this is a text string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer that fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => i64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// The display form: a JSON value a human or `jq` can read.
    ///
    /// JSON cannot hold everything CBOR can, so the conversion is documented
    /// and lossless for the JSON data model:
    /// - byte strings become `{"$bytes": "<standard base64>"}`;
    /// - tagged values become `{"$tag": <number>, "$value": <value>}`;
    /// - map keys that are not text become their compact display JSON, as text;
    /// - NaN and infinities become the strings `"NaN"`, `"Infinity"` and `"-Infinity"`;
    /// - integers below `i64::MIN` (CBOR reaches -2^64) become their decimal text.
    pub fn to_display_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Integer(i) => integer_to_json(*i),
            Value::Float(f) => float_to_json(*f),
            Value::Bytes(b) => {
                let mut m = serde_json::Map::new();
                m.insert(
                    "$bytes".into(),
                    J::String(base64::engine::general_purpose::STANDARD.encode(b)),
                );
                J::Object(m)
            }
            Value::Text(s) => J::String(s.clone()),
            Value::Array(items) => J::Array(items.iter().map(Value::to_display_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (display_key(k), v.to_display_json()))
                    .collect(),
            ),
            Value::Tag(tag, inner) => {
                let mut m = serde_json::Map::new();
                m.insert("$tag".into(), J::from(*tag));
                m.insert("$value".into(), inner.to_display_json());
                J::Object(m)
            }
        }
    }

    /// Converts a parsed JSON document, as Python's `json.loads` would see it.
    pub fn from_json(json: serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Integer(i.into())
                } else if let Some(u) = n.as_u64() {
                    Value::Integer(u.into())
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            J::String(s) => Value::Text(s),
            J::Array(items) => Value::Array(items.into_iter().map(Value::from_json).collect()),
            J::Object(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (Value::Text(k), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

fn integer_to_json(i: i128) -> serde_json::Value {
    if let Ok(v) = i64::try_from(i) {
        v.into()
    } else if let Ok(v) = u64::try_from(i) {
        v.into()
    } else {
        // Below -2^63: JSON numbers of serde_json stop at i64.
        serde_json::Value::String(i.to_string())
    }
}

fn float_to_json(f: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => serde_json::Value::Number(n),
        None if f.is_nan() => "NaN".into(),
        None if f > 0.0 => "Infinity".into(),
        None => "-Infinity".into(),
    }
}

fn display_key(key: &Value) -> String {
    match key {
        Value::Text(s) => s.clone(),
        other => other.to_display_json().to_string(),
    }
}

impl fmt::Display for Value {
    /// The compact display JSON of the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_display_json())
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Integer(v.into())
            }
        }
    )*};
}
from_integer!(i8, i16, i32, i64, u8, u16, u32, u64);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::Array(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl Serialize for Value {
    /// Serialises through serde. Tags are dropped (their content is
    /// written); use [`crate::Codec::encode_value`] to keep them in CBOR.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Integer(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    serializer.serialize_i64(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    serializer.serialize_u64(v)
                } else {
                    serializer.serialize_i128(*i)
                }
            }
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::Text(s) => serializer.serialize_str(s),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::Tag(_, inner) => inner.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// The smallest integer CBOR writes without a bignum tag: `-2^64`.
const MIN_NATIVE: i128 = -(1 << 64);
/// The largest integer CBOR writes without a bignum tag: `2^64 - 1`.
const MAX_NATIVE: i128 = u64::MAX as i128;

/// An integer in the CBOR native range, or the bignum CBOR writes for it.
///
/// ciborium hands bignums that fit 128 bits to serde as plain integers;
/// this keeps the serde path in step with [`crate::Codec::decode_value`],
/// which yields tag 2 or 3 for them, as Python's `cbor2` writes them.
fn integer_or_bignum(v: i128) -> Value {
    if v > MAX_NATIVE {
        bignum(2, v.unsigned_abs())
    } else if v < MIN_NATIVE {
        // Tag 3 holds `-1 - v`, which is `!v` in two's complement.
        bignum(3, (!v).unsigned_abs())
    } else {
        Value::Integer(v)
    }
}

/// Tag 2 (positive) or 3 (negative) over the minimal big-endian bytes of `n`.
fn bignum(tag: u64, n: u128) -> Value {
    let bytes = n.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    Value::Tag(tag, Box::new(Value::Bytes(bytes[first..].to_vec())))
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any CBOR or JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Integer(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(integer_or_bignum(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(match i128::try_from(v) {
            Ok(v) => integer_or_bignum(v),
            Err(_) => bignum(2, v),
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
    /// ciborium hands a CBOR tag to `deserialize_any` as an enum: variant
    /// `@@TAGGED@@`, a tuple of the tag number and the tagged item (this is
    /// how its own `tag::Captured` reads tags). Keeping the tag makes the
    /// serde path read what [`crate::Codec::decode_value`] reads, such as a
    /// Python `datetime` (tag 0).
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (variant, access): (String, _) = data.variant()?;
        match variant.as_str() {
            CIBORIUM_TAGGED => access.tuple_variant(2, TaggedVisitor),
            CIBORIUM_UNTAGGED => access.newtype_variant(),
            other => Err(de::Error::unknown_variant(
                other,
                &[CIBORIUM_TAGGED, CIBORIUM_UNTAGGED],
            )),
        }
    }
}

/// The variant names of ciborium's serde representation of CBOR tags.
const CIBORIUM_TAGGED: &str = "@@TAGGED@@";
const CIBORIUM_UNTAGGED: &str = "@@UNTAGGED@@";

/// Reads ciborium's `(tag, item)` pair of a tagged value.
struct TaggedVisitor;

impl<'de> Visitor<'de> for TaggedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CBOR tag and its item")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let tag: u64 = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let item: Value = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok(Value::Tag(tag, Box::new(item)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_json_of_cbor_only_values() {
        let v = Value::Map(vec![
            (Value::from("b"), Value::Bytes(vec![0, 1, 2, 255])),
            (Value::from(1), Value::from("int key")),
            (Value::Bool(true), Value::Null),
            (Value::from("t"), Value::Tag(1, Box::new(Value::from(1.5)))),
            (Value::from("nan"), Value::Float(f64::NAN)),
            (Value::from("inf"), Value::Float(f64::NEG_INFINITY)),
            (Value::from("big"), Value::from(u64::MAX)),
            (Value::from("small"), Value::Integer(-(1i128 << 64))),
        ]);
        assert_eq!(
            v.to_display_json().to_string(),
            r#"{"b":{"$bytes":"AAEC/w=="},"1":"int key","true":null,"t":{"$tag":1,"$value":1.5},"nan":"NaN","inf":"-Infinity","big":18446744073709551615,"small":"-18446744073709551616"}"#
        );
    }

    #[test]
    fn map_helpers() {
        let v = Value::map([("message", Value::from("hi")), ("n", Value::from(3))]);
        assert_eq!(v.get("message").and_then(Value::as_str), Some("hi"));
        assert_eq!(v.get("n").and_then(Value::as_i64), Some(3));
        assert_eq!(v.get("missing"), None);
        assert_eq!(Value::from("x").get("x"), None);
        assert_eq!(Value::from(None::<i32>), Value::Null);
    }

    #[test]
    fn serde_bignums_become_tags_like_decode_value() {
        use serde::de::value::Error;
        let visit_i = |v: i128| ValueVisitor.visit_i128::<Error>(v).unwrap();
        let visit_u = |v: u128| ValueVisitor.visit_u128::<Error>(v).unwrap();
        let tag = |t: u64, bytes: &[u8]| Value::Tag(t, Box::new(Value::Bytes(bytes.to_vec())));
        let two_64 = [1, 0, 0, 0, 0, 0, 0, 0, 0];
        // The native range stays integers, up to both of its ends.
        assert_eq!(visit_i(MAX_NATIVE), Value::from(u64::MAX));
        assert_eq!(visit_i(MIN_NATIVE), Value::Integer(-(1 << 64)));
        assert_eq!(visit_u(7), Value::from(7));
        // Beyond it, the bignum cbor2 writes: 2^64 and -2^64 - 1.
        assert_eq!(visit_i(MAX_NATIVE + 1), tag(2, &two_64));
        assert_eq!(visit_u(1 << 64), tag(2, &two_64));
        assert_eq!(visit_i(MIN_NATIVE - 1), tag(3, &two_64));
        assert_eq!(visit_u(u128::MAX), tag(2, &[0xff; 16]));
        assert_eq!(
            visit_i(i128::MIN),
            tag(3, &[[0x7f].as_slice(), &[0xff; 15]].concat())
        );
        // Through ciborium, as a service decodes a payload.
        let cbor = [0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let value: Value = ciborium::from_reader(&cbor[..]).unwrap();
        assert_eq!(value, tag(2, &two_64));
    }

    #[test]
    fn serde_path_keeps_cbor_tags() {
        // {"at": <tag 0>"2024-01-02T03:04:05Z", "n": <tag 1>[<tag 258>[1]]}
        let mut cbor = vec![0xa2, 0x62, b'a', b't', 0xc0, 0x74];
        cbor.extend_from_slice(b"2024-01-02T03:04:05Z");
        cbor.extend_from_slice(&[0x61, b'n', 0xc1, 0x81, 0xd9, 0x01, 0x02, 0x81, 0x01]);
        let expected = Value::map([
            (
                "at",
                Value::Tag(0, Box::new(Value::from("2024-01-02T03:04:05Z"))),
            ),
            (
                "n",
                Value::Tag(
                    1,
                    Box::new(Value::Array(vec![Value::Tag(
                        258,
                        Box::new(Value::Array(vec![Value::from(1)])),
                    )])),
                ),
            ),
        ]);
        let value: Value = ciborium::from_reader(&cbor[..]).unwrap();
        assert_eq!(value, expected);
        // A tagged value inside a typed payload.
        #[derive(Debug, serde::Deserialize)]
        struct Typed {
            at: Value,
        }
        let typed: Typed = ciborium::from_reader(&cbor[..]).unwrap();
        assert_eq!(Some(&typed.at), expected.get("at"));
    }

    #[test]
    fn from_json_keeps_integers_exact() {
        let j: serde_json::Value = serde_json::from_str(
            r#"{"max": 18446744073709551615, "min": -9223372036854775808, "f": 0.1}"#,
        )
        .unwrap();
        let v = Value::from_json(j);
        assert_eq!(v.get("max"), Some(&Value::Integer(u64::MAX.into())));
        assert_eq!(v.get("min"), Some(&Value::Integer(i64::MIN.into())));
        assert_eq!(v.get("f"), Some(&Value::Float(0.1)));
    }
}
