//! Payload codecs: CBOR and JSON, chosen by content type as eventail does.
//!
//! See `docs/protocol.md`, section "Codecs".

use std::cell::RefCell;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Value;

/// The content type of CBOR payloads.
pub const CBOR_CONTENT_TYPE: &str = "application/cbor";
/// The content type of JSON payloads.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// A payload encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    /// CBOR (RFC 8949), eventail's default.
    #[default]
    Cbor,
    /// JSON, written as raw UTF-8.
    Json,
}

/// A payload could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode payload as {codec}: {message}")]
pub struct EncodeError {
    /// The codec that refused the value.
    pub codec: Codec,
    /// What went wrong.
    pub message: String,
}

/// A payload could not be decoded, or did not fit the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {codec} payload: {message}")]
pub struct DecodeError {
    /// The codec the payload was decoded with.
    pub codec: Codec,
    /// What went wrong.
    pub message: String,
}

impl Codec {
    /// The content type this codec writes.
    pub const fn content_type(self) -> &'static str {
        match self {
            Codec::Cbor => CBOR_CONTENT_TYPE,
            Codec::Json => JSON_CONTENT_TYPE,
        }
    }

    /// The codec to decode a payload with: CBOR when the content type is
    /// exactly `application/cbor`, JSON otherwise (including when absent).
    /// This is eventail's rule.
    pub fn for_content_type(content_type: Option<&str>) -> Codec {
        match content_type {
            Some(CBOR_CONTENT_TYPE) => Codec::Cbor,
            _ => Codec::Json,
        }
    }

    /// Encodes a serde value.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, EncodeError> {
        let result = match self {
            Codec::Cbor => {
                let mut out = Vec::with_capacity(128);
                ciborium::into_writer(value, &mut out)
                    .map(|()| out)
                    .map_err(|e| e.to_string())
            }
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        };
        result.map_err(|message| EncodeError {
            codec: self,
            message,
        })
    }

    /// Decodes a payload into a serde type.
    ///
    /// An empty body is read as `null`, as eventail does, so it fits an
    /// `Option` or `()`.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, DecodeError> {
        let result = if body.is_empty() {
            serde_json::from_slice(b"null").map_err(|e| e.to_string())
        } else {
            match self {
                Codec::Cbor => {
                    with_scratch(|scratch| ciborium::de::from_reader_with_buffer(body, scratch))
                        .map_err(|e| e.to_string())
                }
                Codec::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
            }
        };
        result.map_err(|message| DecodeError {
            codec: self,
            message,
        })
    }

    /// Encodes a dynamic value, keeping CBOR tags and non-text map keys.
    ///
    /// In JSON, map keys that are integers, floats, booleans or null are
    /// written as text, as Python's `json` does; other keys are refused.
    pub fn encode_value(self, value: &Value) -> Result<Vec<u8>, EncodeError> {
        let err = |message: String| EncodeError {
            codec: self,
            message,
        };
        match self {
            Codec::Cbor => {
                let cbor = to_cbor(value).map_err(err)?;
                let mut out = Vec::with_capacity(128);
                ciborium::into_writer(&cbor, &mut out).map_err(|e| err(e.to_string()))?;
                Ok(out)
            }
            Codec::Json => {
                let json = to_json(value).map_err(err)?;
                serde_json::to_vec(&json).map_err(|e| err(e.to_string()))
            }
        }
    }

    /// Decodes a payload into a dynamic value. An empty body is `null`.
    pub fn decode_value(self, body: &[u8]) -> Result<Value, DecodeError> {
        if body.is_empty() {
            return Ok(Value::Null);
        }
        let err = |message: String| DecodeError {
            codec: self,
            message,
        };
        match self {
            Codec::Cbor => {
                let cbor: ciborium::Value =
                    with_scratch(|scratch| ciborium::de::from_reader_with_buffer(body, scratch))
                        .map_err(|e| err(e.to_string()))?;
                Ok(from_cbor(cbor))
            }
            Codec::Json => {
                let json: serde_json::Value =
                    serde_json::from_slice(body).map_err(|e| err(e.to_string()))?;
                Ok(Value::from_json(json))
            }
        }
    }
}

/// The size of ciborium's scratch buffer, as `ciborium::from_reader` uses:
/// text and byte strings up to this size are read through it.
const SCRATCH_SIZE: usize = 4096;

thread_local! {
    /// `ciborium::from_reader` zeroes a fresh 4 KiB buffer on every call,
    /// which costs more than decoding a small payload; one buffer per
    /// thread, reused, does the same job.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_SIZE].into_boxed_slice());
}

/// Runs `decode` with this thread's scratch buffer, or a fresh one when a
/// decode is already running on this thread (a `Deserialize` impl that
/// decodes CBOR itself).
fn with_scratch<T>(decode: impl FnOnce(&mut [u8]) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => decode(&mut scratch),
        Err(_) => decode(&mut [0; SCRATCH_SIZE]),
    })
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Cbor => "CBOR",
            Codec::Json => "JSON",
        })
    }
}

fn to_cbor(value: &Value) -> Result<ciborium::Value, String> {
    use ciborium::Value as C;
    Ok(match value {
        Value::Null => C::Null,
        Value::Bool(b) => C::Bool(*b),
        Value::Integer(i) => C::Integer(
            ciborium::value::Integer::try_from(*i)
                .map_err(|_| format!("integer {i} is outside the CBOR range"))?,
        ),
        Value::Float(f) => C::Float(*f),
        Value::Bytes(b) => C::Bytes(b.clone()),
        Value::Text(s) => C::Text(s.clone()),
        Value::Array(items) => C::Array(items.iter().map(to_cbor).collect::<Result<_, _>>()?),
        Value::Map(entries) => C::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((to_cbor(k)?, to_cbor(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Tag(tag, inner) => C::Tag(*tag, Box::new(to_cbor(inner)?)),
    })
}

fn from_cbor(value: ciborium::Value) -> Value {
    use ciborium::Value as C;
    match value {
        C::Null => Value::Null,
        C::Bool(b) => Value::Bool(b),
        C::Integer(i) => Value::Integer(i.into()),
        C::Float(f) => Value::Float(f),
        C::Bytes(b) => Value::Bytes(b),
        C::Text(s) => Value::Text(s),
        C::Array(items) => Value::Array(items.into_iter().map(from_cbor).collect()),
        C::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (from_cbor(k), from_cbor(v)))
                .collect(),
        ),
        C::Tag(tag, inner) => Value::Tag(tag, Box::new(from_cbor(*inner))),
        // ciborium's value type is non-exhaustive; nothing else exists today.
        _ => Value::Null,
    }
}

fn to_json(value: &Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Integer(i) => {
            if let Ok(v) = i64::try_from(*i) {
                v.into()
            } else if let Ok(v) = u64::try_from(*i) {
                v.into()
            } else {
                return Err(format!("integer {i} does not fit a JSON number"));
            }
        }
        Value::Float(f) => J::Number(
            serde_json::Number::from_f64(*f)
                .ok_or_else(|| format!("{f} has no JSON representation"))?,
        ),
        Value::Bytes(_) => return Err("byte strings have no JSON representation".into()),
        Value::Text(s) => J::String(s.clone()),
        Value::Array(items) => J::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| Ok((json_key(k)?, to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Tag(tag, _) => return Err(format!("CBOR tag {tag} has no JSON representation")),
    })
}

/// Python's `json.dumps` turns scalar keys into text; so do we.
fn json_key(key: &Value) -> Result<String, String> {
    match key {
        Value::Text(s) => Ok(s.clone()),
        Value::Integer(_) | Value::Float(_) => Ok(to_json(key)?.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok("null".into()),
        other => Err(format!("map key {other} cannot be a JSON object key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Echo {
        message: String,
    }

    /// A payload that carries another CBOR payload as bytes, decoded while
    /// the outer one is: the scratch buffer is already in use.
    #[derive(Debug, PartialEq)]
    struct Nested(Echo);

    impl<'de> Deserialize<'de> for Nested {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Nested, D::Error> {
            let bytes: serde_bytes_shim::Bytes = Deserialize::deserialize(d)?;
            Codec::Cbor
                .decode(&bytes.0)
                .map(Nested)
                .map_err(serde::de::Error::custom)
        }
    }

    mod serde_bytes_shim {
        /// CBOR bytes read into a vector.
        pub(super) struct Bytes(pub(super) Vec<u8>);

        impl<'de> serde::Deserialize<'de> for Bytes {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                        Ok(Bytes(v.to_vec()))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    }

    #[test]
    fn cbor_decodes_nest_and_repeat() {
        let inner = Codec::Cbor
            .encode(&Echo {
                message: "hi".into(),
            })
            .unwrap();
        let outer = Codec::Cbor.encode_value(&Value::Bytes(inner)).unwrap();
        let nested: Nested = Codec::Cbor.decode(&outer).unwrap();
        assert_eq!(
            nested,
            Nested(Echo {
                message: "hi".into()
            })
        );
        for text in ["a", "bb", &"long".repeat(2000)] {
            let body = Codec::Cbor
                .encode(&Echo {
                    message: text.into(),
                })
                .unwrap();
            let back: Echo = Codec::Cbor.decode(&body).unwrap();
            assert_eq!(back.message, text);
        }
    }

    #[test]
    fn content_type_rule_is_eventails() {
        assert_eq!(
            Codec::for_content_type(Some("application/cbor")),
            Codec::Cbor
        );
        assert_eq!(
            Codec::for_content_type(Some("application/json")),
            Codec::Json
        );
        assert_eq!(Codec::for_content_type(Some("text/plain")), Codec::Json);
        assert_eq!(
            Codec::for_content_type(Some("application/CBOR")),
            Codec::Json
        );
        assert_eq!(Codec::for_content_type(None), Codec::Json);
        assert_eq!(Codec::Cbor.content_type(), "application/cbor");
        assert_eq!(Codec::Json.content_type(), "application/json");
    }

    #[test]
    fn typed_round_trip_in_both_codecs() {
        let echo = Echo {
            message: "héllo 👋".into(),
        };
        for codec in [Codec::Cbor, Codec::Json] {
            let bytes = codec.encode(&echo).unwrap();
            assert_eq!(codec.decode::<Echo>(&bytes).unwrap(), echo);
        }
    }

    #[test]
    fn json_is_raw_utf8_not_escaped() {
        let bytes = Codec::Json
            .encode(&Echo {
                message: "é👋".into(),
            })
            .unwrap();
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), r#"{"message":"é👋"}"#);
        let bytes = Codec::Json.encode_value(&Value::from("é")).unwrap();
        assert_eq!(bytes, "\"é\"".as_bytes());
    }

    #[test]
    fn cbor_bytes_are_standard() {
        // {"message": "hi"} as any CBOR encoder writes it.
        let bytes = Codec::Cbor
            .encode(&Echo {
                message: "hi".into(),
            })
            .unwrap();
        assert_eq!(
            bytes,
            [
                0xa1, 0x67, b'm', b'e', b's', b's', b'a', b'g', b'e', 0x62, b'h', b'i'
            ]
        );
    }

    #[test]
    fn empty_body_is_null() {
        assert_eq!(Codec::Cbor.decode_value(b"").unwrap(), Value::Null);
        assert_eq!(Codec::Json.decode_value(b"").unwrap(), Value::Null);
        assert_eq!(Codec::Cbor.decode::<Option<Echo>>(b"").unwrap(), None);
        assert!(Codec::Cbor.decode::<Echo>(b"").is_err());
    }

    #[test]
    fn decode_errors_are_typed() {
        let err = Codec::Cbor.decode_value(&[0xff, 0x00]).unwrap_err();
        assert_eq!(err.codec, Codec::Cbor);
        let err = Codec::Json.decode::<Echo>(b"{\"other\": 1}").unwrap_err();
        assert_eq!(err.codec, Codec::Json);
        assert!(err.to_string().contains("message"), "{err}");
        // A well-formed payload of the wrong shape does not fit the type.
        let cbor = Codec::Cbor.encode(&vec![1, 2]).unwrap();
        assert!(Codec::Cbor.decode::<Echo>(&cbor).is_err());
    }

    #[test]
    fn dynamic_values_round_trip() {
        let value = Value::Map(vec![
            (Value::from("text"), Value::from("unicode ✓ 🦀")),
            (Value::from("i64min"), Value::from(i64::MIN)),
            (Value::from("u64max"), Value::from(u64::MAX)),
            (Value::from("neg"), Value::from(-1)),
            (Value::from("float"), Value::from(1.0e300)),
            (Value::from("tiny"), Value::from(5e-324)),
            (
                Value::from("list"),
                Value::Array(vec![Value::Null, Value::Bool(false)]),
            ),
            (Value::from("empty_map"), Value::Map(vec![])),
            (Value::from("empty_list"), Value::Array(vec![])),
        ]);
        for codec in [Codec::Cbor, Codec::Json] {
            let bytes = codec.encode_value(&value).unwrap();
            assert_eq!(codec.decode_value(&bytes).unwrap(), value, "{codec}");
            // The serde path agrees with the dynamic one.
            assert_eq!(codec.decode::<Value>(&bytes).unwrap(), value, "{codec}");
        }
        let with_cbor_only = Value::Map(vec![
            (Value::from(7), Value::Bytes(vec![1, 2, 3])),
            (
                Value::from("tag"),
                Value::Tag(1, Box::new(Value::from(1.5))),
            ),
            (Value::from("most negative"), Value::Integer(-(1i128 << 64))),
        ]);
        let bytes = Codec::Cbor.encode_value(&with_cbor_only).unwrap();
        assert_eq!(Codec::Cbor.decode_value(&bytes).unwrap(), with_cbor_only);
        assert!(Codec::Json.encode_value(&with_cbor_only).is_err());
    }

    #[test]
    fn json_scalar_keys_become_text_like_python() {
        let value = Value::Map(vec![
            (Value::from(1), Value::Null),
            (Value::Bool(true), Value::Null),
            (Value::Null, Value::Null),
        ]);
        let bytes = Codec::Json.encode_value(&value).unwrap();
        assert_eq!(bytes, br#"{"1":null,"true":null,"null":null}"#);
        assert!(
            Codec::Json
                .encode_value(&Value::Integer(1i128 << 70))
                .is_err()
        );
        assert!(
            Codec::Cbor
                .encode_value(&Value::Integer(1i128 << 70))
                .is_err()
        );
    }
}
