//! The glue between the protocol types of bus-core and amqprs: message
//! properties, header values, and forwarding of broker callbacks into the
//! session's own task.

use amqprs::channel::Channel;
use amqprs::connection::Connection;
use amqprs::{Ack, Nack, callbacks};
use amqprs::{BasicProperties, Cancel, Close, CloseChannel, FieldTable, FieldValue, Return};
use bus_core::{Properties, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::service::Returned;

/// Something the broker told us asynchronously, forwarded from amqprs's
/// dispatcher task to the task that owns all the state it affects (a
/// session, or a tool's own loop).
#[derive(Debug)]
#[non_exhaustive]
pub enum BrokerEvent {
    /// Publisher confirm: the broker took responsibility for the message(s).
    Ack {
        /// The publish sequence number on the channel.
        tag: u64,
        /// Whether every earlier unconfirmed number is acked too.
        multiple: bool,
    },
    /// Publisher confirm: the broker could not take the message(s).
    Nack {
        /// The publish sequence number on the channel.
        tag: u64,
        /// Whether every earlier unconfirmed number is nacked too.
        multiple: bool,
    },
    /// A mandatory message no queue was bound for.
    Returned(Box<Returned>),
    /// The broker cancelled one of our consumers (for example, its queue was deleted).
    ConsumerCancelled {
        /// The cancelled consumer.
        consumer_tag: String,
    },
    /// The broker closed a channel, usually for a protocol error.
    ChannelClosed {
        /// The AMQP reply code, e.g. 404.
        code: u16,
        /// The broker's text.
        text: String,
    },
    /// The broker closed the connection (shutdown, `close_connection`, ...).
    ConnectionClosed {
        /// The AMQP reply code, e.g. 320.
        code: u16,
        /// The broker's text.
        text: String,
    },
}

/// Forwards channel callbacks (confirms, returns, cancels, closes) as
/// [`BrokerEvent`]s. Sending never blocks: the receiver is unbounded
/// because confirms must never be dropped, and their number is bounded by
/// the number of publishes in flight.
#[derive(Debug)]
pub struct ChannelEvents(pub UnboundedSender<BrokerEvent>);

#[async_trait::async_trait]
impl callbacks::ChannelCallback for ChannelEvents {
    async fn close(
        &mut self,
        _channel: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(BrokerEvent::ChannelClosed {
            code: close.reply_code(),
            text: close.reply_text().clone(),
        });
        Ok(())
    }

    async fn cancel(
        &mut self,
        _channel: &Channel,
        cancel: Cancel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(BrokerEvent::ConsumerCancelled {
            consumer_tag: cancel.consumer_tag().clone(),
        });
        Ok(())
    }

    async fn flow(
        &mut self,
        _channel: &Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        // RabbitMQ does not use channel.flow any more; agree with it.
        Ok(active)
    }

    async fn publish_ack(&mut self, _channel: &Channel, ack: Ack) {
        let _ = self.0.send(BrokerEvent::Ack {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
    }

    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        let _ = self.0.send(BrokerEvent::Nack {
            tag: nack.delivery_tag(),
            multiple: nack.multiple(),
        });
    }

    async fn publish_return(
        &mut self,
        _channel: &Channel,
        ret: Return,
        basic_properties: BasicProperties,
        content: Vec<u8>,
    ) {
        let _ = self.0.send(BrokerEvent::Returned(Box::new(Returned {
            reply_code: ret.reply_code(),
            reply_text: ret.reply_text().clone(),
            exchange: ret.exchange().clone(),
            routing_key: ret.routing_key().clone(),
            properties: from_amqp(&basic_properties),
            body: content,
        })));
    }
}

/// Forwards the connection's close notification as a [`BrokerEvent`].
#[derive(Debug)]
pub struct ConnectionEvents(pub UnboundedSender<BrokerEvent>);

#[async_trait::async_trait]
impl callbacks::ConnectionCallback for ConnectionEvents {
    async fn close(
        &mut self,
        _connection: &Connection,
        close: Close,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(BrokerEvent::ConnectionClosed {
            code: close.reply_code(),
            text: close.reply_text().clone(),
        });
        Ok(())
    }

    async fn blocked(&mut self, _connection: &Connection, reason: String) {
        // amqprs does not advertise `connection.blocked`, so RabbitMQ never
        // sends this; stalls are detected from missing confirms instead.
        tracing::warn!(%reason, "broker blocked the connection");
    }

    async fn unblocked(&mut self, _connection: &Connection) {
        tracing::info!("broker unblocked the connection");
    }

    async fn secret_updated(&mut self, _connection: &Connection) {}
}

/// Converts protocol properties into amqprs's. Text headers become long
/// strings, as pika writes them.
pub fn to_amqp(properties: &Properties) -> BasicProperties {
    let mut p = BasicProperties::default();
    if let Some(v) = &properties.content_type {
        p.with_content_type(v);
    }
    if let Some(v) = properties.delivery_mode {
        p.with_delivery_mode(v);
    }
    if !properties.headers.is_empty() {
        let mut table = FieldTable::new();
        for (k, v) in &properties.headers {
            if let Ok(name) = k.as_str().try_into() {
                table.insert(name, to_field_value(v));
            }
        }
        p.with_headers(table);
    }
    if let Some(v) = &properties.correlation_id {
        p.with_correlation_id(v);
    }
    if let Some(v) = &properties.reply_to {
        p.with_reply_to(v);
    }
    if let Some(v) = &properties.expiration {
        p.with_expiration(v);
    }
    if let Some(v) = &properties.message_id {
        p.with_message_id(v);
    }
    if let Some(v) = properties.timestamp {
        p.with_timestamp(v);
    }
    if let Some(v) = &properties.user_id {
        p.with_user_id(v);
    }
    if let Some(v) = &properties.app_id {
        p.with_app_id(v);
    }
    p
}

/// Converts amqprs's properties into protocol properties.
pub fn from_amqp(p: &BasicProperties) -> Properties {
    Properties {
        content_type: p.content_type().cloned(),
        delivery_mode: p.delivery_mode(),
        headers: p
            .headers()
            .map(|t| {
                t.as_ref()
                    .iter()
                    .map(|(k, v)| (k.as_ref().clone(), from_field_value(v)))
                    .collect()
            })
            .unwrap_or_default(),
        correlation_id: p.correlation_id().cloned(),
        reply_to: p.reply_to().cloned(),
        expiration: p.expiration().cloned(),
        message_id: p.message_id().cloned(),
        timestamp: p.timestamp(),
        user_id: p.user_id().cloned(),
        app_id: p.app_id().cloned(),
    }
}

/// A header value on the wire. Text becomes a long string, as pika writes
/// Python strings, so that eventail reads our headers as `str`.
pub(crate) fn to_field_value(v: &Value) -> FieldValue {
    match v {
        Value::Null => FieldValue::V,
        Value::Bool(b) => FieldValue::t(*b),
        Value::Integer(i) => match i64::try_from(*i) {
            Ok(i) => FieldValue::l(i),
            // AMQP tables have no unsigned 64-bit type; keep the digits.
            Err(_) => long_string(&i.to_string()),
        },
        Value::Float(f) => FieldValue::d(*f),
        Value::Text(s) => long_string(s),
        Value::Bytes(b) => b
            .clone()
            .try_into()
            .map(FieldValue::x)
            .unwrap_or(FieldValue::V),
        Value::Array(items) => items
            .iter()
            .map(to_field_value)
            .collect::<Vec<_>>()
            .try_into()
            .map(FieldValue::A)
            .unwrap_or(FieldValue::V),
        Value::Map(entries) => {
            let mut table = FieldTable::new();
            for (k, v) in entries {
                let key = match k {
                    Value::Text(s) => s.clone(),
                    other => other.to_string(),
                };
                if let Ok(name) = key.as_str().try_into() {
                    table.insert(name, to_field_value(v));
                }
            }
            FieldValue::F(table)
        }
        Value::Tag(_, inner) => to_field_value(inner),
    }
}

fn long_string(s: &str) -> FieldValue {
    s.try_into().map(FieldValue::S).unwrap_or(FieldValue::V)
}

/// A header value as the protocol sees it. Timestamps become integers
/// (seconds) and decimals floats.
pub(crate) fn from_field_value(v: &FieldValue) -> Value {
    match v {
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
        FieldValue::D(d) => d
            .to_string()
            .parse::<f64>()
            .map_or(Value::Null, Value::Float),
        FieldValue::S(s) => Value::Text(s.as_ref().clone()),
        FieldValue::A(items) => {
            let items: Vec<FieldValue> = items.clone().into();
            Value::Array(items.iter().map(from_field_value).collect())
        }
        FieldValue::T(t) => Value::from(*t),
        FieldValue::F(table) => Value::Map(
            table
                .as_ref()
                .iter()
                .map(|(k, v)| (Value::Text(k.as_ref().clone()), from_field_value(v)))
                .collect(),
        ),
        FieldValue::V => Value::Null,
        FieldValue::x(bytes) => Value::Bytes(bytes.clone().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip() {
        let mut p = Properties {
            content_type: Some("application/cbor".into()),
            delivery_mode: Some(2),
            correlation_id: Some("c".into()),
            reply_to: Some("r".into()),
            expiration: Some("1000".into()),
            message_id: Some("m".into()),
            timestamp: Some(12),
            user_id: Some("guest".into()),
            app_id: Some("app".into()),
            ..Properties::default()
        };
        p.headers
            .insert("conversation_id".into(), Value::from("conv"));
        p.headers.insert("n".into(), Value::from(-3));
        p.headers.insert("flag".into(), Value::Bool(true));
        p.headers.insert("f".into(), Value::Float(1.5));
        p.headers
            .insert("list".into(), Value::Array(vec![Value::from("a")]));
        p.headers
            .insert("table".into(), Value::map([("k", Value::from("v"))]));
        p.headers.insert("bytes".into(), Value::Bytes(vec![1, 2]));
        assert_eq!(from_amqp(&to_amqp(&p)), p);
    }

    #[test]
    fn text_headers_are_long_strings() {
        assert!(matches!(
            to_field_value(&Value::from("x")),
            FieldValue::S(_)
        ));
        assert!(matches!(
            to_field_value(&Value::from(u64::MAX)),
            FieldValue::S(_)
        ));
    }
}
