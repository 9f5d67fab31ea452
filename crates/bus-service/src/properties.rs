//! Converting message properties between `bus_core` and amqprs. Header
//! values map as pika (eventail's client) writes them, so that both read
//! the same types:
//!
//! | `Value`                         | AMQP field value              |
//! |---------------------------------|-------------------------------|
//! | `Null`                          | `V` (void)                    |
//! | `Bool`                          | `t`                           |
//! | `Integer` in `i32` range        | `I` (long int)                |
//! | other `Integer` in `i64` range  | `l` (long long int)           |
//! | `Float`                         | `d` (double)                  |
//! | `Text`                          | `S` (long string)             |
//! | `Bytes`                         | `x` (byte array)              |
//! | `Array`                         | `A` (field array)             |
//! | `Map` with text keys            | `F` (field table)             |
//! | `Tag(1, Integer)` (epoch time)  | `T` (timestamp, seconds)      |
//! | `Tag(4, [exponent, mantissa])`  | `D` (decimal, scale = -exponent) |
//!
//! Reading back also accepts the other integer types (`b`, `B`, `s`, `u`,
//! `i`) and `f` (float). Nested tables come back with their keys sorted,
//! since AMQP tables have no order.

use std::collections::BTreeMap;

use amqprs::{
    BasicProperties, ByteArray, DecimalValue, FieldArray, FieldTable, FieldValue, LongStr, ShortStr,
};
use bus_core::{Properties, Value};

/// CBOR tag for an epoch-based date/time, used for AMQP timestamps.
const EPOCH_TAG: u64 = 1;
/// CBOR tag for a decimal fraction `[exponent, mantissa]`, used for AMQP decimals.
const DECIMAL_TAG: u64 = 4;

/// A value or property that AMQP 0-9-1 cannot carry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PropsError {
    /// A property, header name or table key is longer than 255 bytes.
    #[error("{0} is longer than 255 bytes")]
    TooLong(String),
    /// A header value has no AMQP field type.
    #[error("header {name:?}: {value} has no AMQP field type")]
    Unsupported {
        /// The header it was found in.
        name: String,
        /// The display form of the value.
        value: String,
    },
}

/// Converts properties to amqprs, or says what AMQP cannot carry.
pub fn to_amqp(props: &Properties) -> Result<BasicProperties, PropsError> {
    let short = |what: &str, v: &Option<String>| -> Result<Option<String>, PropsError> {
        match v {
            Some(s) if s.len() > 255 => Err(PropsError::TooLong(what.to_owned())),
            other => Ok(other.clone()),
        }
    };
    let headers = if props.headers.is_empty() {
        None
    } else {
        let mut table = FieldTable::new();
        for (name, value) in &props.headers {
            table.insert(short_str(name)?, field_value(name, value)?);
        }
        Some(table)
    };
    Ok(BasicProperties::new(
        short("content_type", &props.content_type)?,
        None,
        headers,
        props.delivery_mode,
        None,
        short("correlation_id", &props.correlation_id)?,
        short("reply_to", &props.reply_to)?,
        short("expiration", &props.expiration)?,
        short("message_id", &props.message_id)?,
        props.timestamp,
        None,
        short("user_id", &props.user_id)?,
        short("app_id", &props.app_id)?,
        None,
    ))
}

/// Converts received amqprs properties back.
pub fn from_amqp(props: &BasicProperties) -> Properties {
    let headers = props
        .headers()
        .map(|table| {
            table
                .as_ref()
                .iter()
                .map(|(k, v)| (k.to_string(), value(v)))
                .collect()
        })
        .unwrap_or_default();
    Properties {
        content_type: props.content_type().cloned(),
        delivery_mode: props.delivery_mode(),
        headers,
        correlation_id: props.correlation_id().cloned(),
        reply_to: props.reply_to().cloned(),
        expiration: props.expiration().cloned(),
        message_id: props.message_id().cloned(),
        timestamp: props.timestamp(),
        user_id: props.user_id().cloned(),
        app_id: props.app_id().cloned(),
    }
}

fn short_str(name: &str) -> Result<ShortStr, PropsError> {
    ShortStr::try_from(name).map_err(|_| PropsError::TooLong(format!("name {name:?}")))
}

pub(crate) fn field_value(header: &str, v: &Value) -> Result<FieldValue, PropsError> {
    let unsupported = || PropsError::Unsupported {
        name: header.to_owned(),
        value: v.to_string(),
    };
    Ok(match v {
        Value::Null => FieldValue::V,
        Value::Bool(b) => FieldValue::t(*b),
        Value::Integer(i) => match (i32::try_from(*i), i64::try_from(*i)) {
            (Ok(small), _) => FieldValue::I(small),
            (_, Ok(long)) => FieldValue::l(long),
            _ => return Err(unsupported()),
        },
        Value::Float(f) => FieldValue::d(*f),
        Value::Text(s) => FieldValue::S(LongStr::try_from(s.as_str()).map_err(|_| unsupported())?),
        Value::Bytes(b) => {
            FieldValue::x(ByteArray::try_from(b.clone()).map_err(|_| unsupported())?)
        }
        Value::Array(items) => {
            let items = items
                .iter()
                .map(|item| field_value(header, item))
                .collect::<Result<Vec<_>, _>>()?;
            FieldValue::A(FieldArray::try_from(items).map_err(|_| unsupported())?)
        }
        Value::Map(entries) => {
            let mut table = FieldTable::new();
            for (k, item) in entries {
                let key = k.as_str().ok_or_else(unsupported)?;
                table.insert(short_str(key)?, field_value(header, item)?);
            }
            FieldValue::F(table)
        }
        Value::Tag(EPOCH_TAG, inner) => match inner.as_ref() {
            Value::Integer(secs) => FieldValue::T(u64::try_from(*secs).map_err(|_| unsupported())?),
            _ => return Err(unsupported()),
        },
        Value::Tag(DECIMAL_TAG, inner) => match inner.as_ref() {
            Value::Array(parts) => match parts.as_slice() {
                [Value::Integer(exponent), Value::Integer(mantissa)] => {
                    let scale = u8::try_from(-*exponent).map_err(|_| unsupported())?;
                    let mantissa = i32::try_from(*mantissa).map_err(|_| unsupported())?;
                    FieldValue::D(DecimalValue::new(scale, mantissa))
                }
                _ => return Err(unsupported()),
            },
            _ => return Err(unsupported()),
        },
        Value::Tag(..) => return Err(unsupported()),
    })
}

fn value(v: &FieldValue) -> Value {
    match v {
        FieldValue::V => Value::Null,
        FieldValue::t(b) => Value::Bool(*b),
        FieldValue::b(i) => Value::from(*i),
        FieldValue::B(i) => Value::from(*i),
        FieldValue::s(i) => Value::from(*i),
        FieldValue::u(i) => Value::from(*i),
        FieldValue::I(i) => Value::from(*i),
        FieldValue::i(i) => Value::from(*i),
        FieldValue::l(i) => Value::from(*i),
        FieldValue::f(f) => Value::Float(f64::from(*f)),
        FieldValue::d(f) => Value::Float(*f),
        FieldValue::S(s) => Value::Text(s.to_string()),
        FieldValue::x(b) => Value::Bytes(Vec::from(b.clone())),
        FieldValue::A(items) => Value::Array(Vec::from(items.clone()).iter().map(value).collect()),
        FieldValue::F(table) => {
            let sorted: BTreeMap<String, Value> = table
                .as_ref()
                .iter()
                .map(|(k, v)| (k.to_string(), value(v)))
                .collect();
            Value::map(sorted)
        }
        FieldValue::T(secs) => Value::Tag(EPOCH_TAG, Box::new(Value::from(*secs))),
        FieldValue::D(d) => decimal(d),
    }
}

/// amqprs keeps a decimal's scale and digits private; its Display form,
/// `Decimal(scale, value)`, is the only way to read them.
fn decimal(d: &DecimalValue) -> Value {
    let text = d.to_string();
    let parts = text
        .strip_prefix("Decimal(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|inner| inner.split_once(", "))
        .and_then(|(scale, value)| Some((scale.parse::<i64>().ok()?, value.parse::<i64>().ok()?)));
    match parts {
        Some((scale, mantissa)) => Value::Tag(
            DECIMAL_TAG,
            Box::new(Value::Array(vec![
                Value::from(-scale),
                Value::from(mantissa),
            ])),
        ),
        None => Value::Text(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Properties {
        let mut props = Properties {
            content_type: Some("application/cbor".into()),
            delivery_mode: Some(2),
            correlation_id: Some("42".into()),
            reply_to: Some("ping.EchoReturn".into()),
            expiration: Some("60000".into()),
            message_id: Some("m-1".into()),
            timestamp: Some(1_700_000_000),
            user_id: Some("guest".into()),
            app_id: Some("tests".into()),
            ..Properties::default()
        };
        let headers = [
            ("conversation_id", Value::from("conv-1")),
            ("null", Value::Null),
            ("flag", Value::Bool(true)),
            ("small", Value::from(-7)),
            ("large", Value::from(i64::MIN)),
            ("float", Value::from(0.1)),
            ("bytes", Value::Bytes(vec![0, 255])),
            (
                "list",
                Value::from(vec![Value::from(1), Value::from("two")]),
            ),
            (
                "table",
                Value::map([("a", Value::from(1)), ("b", Value::from("x"))]),
            ),
            (
                "when",
                Value::Tag(1, Box::new(Value::from(1_700_000_000u64))),
            ),
            (
                "price",
                Value::Tag(
                    4,
                    Box::new(Value::from(vec![Value::from(-2), Value::from(1999)])),
                ),
            ),
        ];
        for (k, v) in headers {
            props.headers.insert(k.to_owned(), v);
        }
        props
    }

    #[test]
    fn round_trip_keeps_every_property_and_header() {
        let props = sample();
        assert_eq!(from_amqp(&to_amqp(&props).unwrap()), props);
    }

    #[test]
    fn integers_use_pikas_field_types() {
        let props = sample();
        let amqp = to_amqp(&props).unwrap();
        let table = amqp.headers().unwrap();
        let get = |k: &str| table.get(&k.try_into().unwrap()).unwrap().clone();
        assert_eq!(get("small"), FieldValue::I(-7));
        assert_eq!(get("large"), FieldValue::l(i64::MIN));
        assert!(matches!(get("conversation_id"), FieldValue::S(_)));
    }

    #[test]
    fn empty_headers_are_omitted() {
        let amqp = to_amqp(&Properties::default()).unwrap();
        assert!(amqp.headers().is_none());
        assert_eq!(from_amqp(&amqp), Properties::default());
    }

    #[test]
    fn unencodable_values_are_errors_not_panics() {
        let mut props = Properties::default();
        props.headers.insert("big".into(), Value::from(u64::MAX));
        assert!(matches!(
            to_amqp(&props),
            Err(PropsError::Unsupported { .. })
        ));

        let mut props = Properties::default();
        props
            .headers
            .insert("k".into(), Value::Map(vec![(Value::from(1), Value::Null)]));
        assert!(to_amqp(&props).is_err());

        let props = Properties {
            reply_to: Some("x".repeat(256)),
            ..Properties::default()
        };
        assert_eq!(
            to_amqp(&props).unwrap_err(),
            PropsError::TooLong("reply_to".into())
        );
    }

    #[test]
    fn other_integer_widths_read_back_as_integers() {
        for (field, expected) in [
            (FieldValue::b(-1), Value::from(-1)),
            (FieldValue::B(255), Value::from(255)),
            (FieldValue::s(-300), Value::from(-300)),
            (FieldValue::u(60000), Value::from(60000)),
            (FieldValue::i(4_000_000_000), Value::from(4_000_000_000u32)),
            (FieldValue::f(0.5), Value::from(0.5)),
        ] {
            assert_eq!(value(&field), expected);
        }
    }
}
