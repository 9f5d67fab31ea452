//! Message kinds, the envelope of a delivery, and the rules that classify it.
//!
//! See `docs/protocol.md`, sections "Properties and headers", "Kinds" and
//! "Validity".

use std::collections::BTreeMap;
use std::fmt;

use crate::{Exchange, Value};

/// The header that carries the conversation id on every business message.
pub const CONVERSATION_ID_HEADER: &str = "conversation_id";
/// The header that carries the status of a result.
pub const STATUS_HEADER: &str = "status";

/// The AMQP message properties this protocol reads and writes.
///
/// It mirrors AMQP's basic properties without depending on a client
/// library, so the protocol rules can be tested without a broker.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Properties {
    /// `content-type`: `application/cbor` or `application/json` on payloads.
    pub content_type: Option<String>,
    /// `delivery-mode`: 2 means persistent.
    pub delivery_mode: Option<u8>,
    /// Application headers.
    pub headers: BTreeMap<String, Value>,
    /// `correlation-id`: pairs a result with its command.
    pub correlation_id: Option<String>,
    /// `reply-to`: where the result of a command goes.
    pub reply_to: Option<String>,
    /// `expiration`, in milliseconds, as text.
    pub expiration: Option<String>,
    /// `message-id`.
    pub message_id: Option<String>,
    /// `timestamp`, in seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// `user-id`, checked by the broker against the connection's user.
    pub user_id: Option<String>,
    /// `app-id`.
    pub app_id: Option<String>,
}

/// Delivery mode 2: the broker writes the message to disk.
pub const PERSISTENT: u8 = 2;

/// What a message is, decided from its exchange and properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A fact published on `events`.
    Event,
    /// A command on `commands`, with a `reply_to`.
    Command,
    /// The result of a command on `commands`, with a `status` header.
    Result,
    /// A message on `configurations`.
    Configuration,
    /// A GELF record on `logs`.
    Log,
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageKind::Event => "event",
            MessageKind::Command => "command",
            MessageKind::Result => "result",
            MessageKind::Configuration => "configuration",
            MessageKind::Log => "log",
        })
    }
}

/// The status of a result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    /// `success`.
    Success,
    /// `error`.
    Error,
    /// Any other non-empty text: eventail passes it through, so do we.
    Other(String),
}

impl Status {
    /// Reads a status header value.
    pub fn parse(text: &str) -> Status {
        match text {
            "success" => Status::Success,
            "error" => Status::Error,
            other => Status::Other(other.to_owned()),
        }
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Other(s) => s,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a delivery breaks the protocol. Such a delivery is dead-lettered at
/// once: retrying cannot fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDelivery {
    /// A business message without the `conversation_id` header.
    #[error("missing conversation_id header on {routing_key}")]
    MissingConversationId {
        /// The routing key of the delivery.
        routing_key: String,
    },
    /// A message on `commands` with neither `reply_to` nor `status`.
    #[error("message on commands with neither reply_to nor status: {routing_key}")]
    NeitherReplyToNorStatus {
        /// The routing key of the delivery.
        routing_key: String,
    },
    /// A message from an exchange that is not one of the four.
    #[error("message from unknown exchange {exchange:?}: {routing_key}")]
    UnknownExchange {
        /// The exchange the delivery came from.
        exchange: String,
        /// The routing key of the delivery.
        routing_key: String,
    },
}

/// The protocol fields of a delivery, read from its properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// What the message is.
    pub kind: MessageKind,
    /// The conversation the message belongs to; empty on configurations
    /// that carry none.
    pub conversation_id: String,
    /// `correlation-id`, when present and not empty.
    pub correlation_id: Option<String>,
    /// `reply-to`, when present and not empty (commands only).
    pub reply_to: Option<String>,
    /// The `status` header (results only).
    pub status: Option<Status>,
    /// The codec to decode the body with.
    pub content_type: Option<String>,
}

/// Broker metadata of a delivery, handed to handlers next to the payload.
///
/// This is eventail's `meta` dictionary, with typed fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Meta {
    /// `timestamp` property.
    pub timestamp: Option<u64>,
    /// `expiration` property.
    pub expiration: Option<String>,
    /// `user-id` property.
    pub user_id: Option<String>,
    /// `app-id` property.
    pub app_id: Option<String>,
    /// The delivery tag on the consuming channel.
    pub delivery_tag: u64,
    /// Whether the broker delivered this message before.
    pub redelivered: bool,
    /// The exchange the message was published to.
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// The headers other than `conversation_id` and `status`
    /// (for example `x-death` on a dead letter).
    pub headers: BTreeMap<String, Value>,
}

/// Where a delivery comes from: the fields of `basic.deliver` the rules use.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryInfo<'a> {
    /// The exchange it was published to.
    pub exchange: &'a str,
    /// Its routing key.
    pub routing_key: &'a str,
    /// Its delivery tag.
    pub delivery_tag: u64,
    /// Whether it was delivered before.
    pub redelivered: bool,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

/// A header as text. eventail takes header values as they come, so a
/// non-text value (an integer status, say) is read as its display form.
fn header_text(value: &Value) -> Option<String> {
    match value {
        Value::Text(s) => Some(s.clone()),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Python's truthiness, which eventail applies to `reply_to` and `status`.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Integer(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Text(s) => !s.is_empty(),
        Value::Bytes(b) => !b.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Tag(_, inner) => truthy(inner),
    }
}

/// Decides the kind of a delivery with eventail 2.3.6's rules.
///
/// - `logs` carries GELF records, and `configurations` configuration
///   messages, neither of which needs a `conversation_id` header.
/// - Any other message without `conversation_id` is invalid.
/// - On `commands`, a non-empty `reply_to` makes a command; otherwise a
///   non-empty `status` header makes a result; otherwise it is invalid.
/// - On `events`, it is an event.
///
/// ```
/// use bus_core::{classify, MessageKind, Properties, Value};
/// let mut props = Properties::default();
/// props.headers.insert("conversation_id".into(), Value::from("c-1"));
/// props.reply_to = Some("ping.EchoReturn".into());
/// assert_eq!(classify("commands", "pong.EchoMessage", &props), Ok(MessageKind::Command));
/// ```
pub fn classify(
    exchange: &str,
    routing_key: &str,
    properties: &Properties,
) -> Result<MessageKind, InvalidDelivery> {
    let exchange_kind =
        Exchange::from_name(exchange).ok_or_else(|| InvalidDelivery::UnknownExchange {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        })?;
    match exchange_kind {
        Exchange::Logs => return Ok(MessageKind::Log),
        Exchange::Configurations => return Ok(MessageKind::Configuration),
        Exchange::Events | Exchange::Commands => {}
    }
    if !properties.headers.contains_key(CONVERSATION_ID_HEADER) {
        return Err(InvalidDelivery::MissingConversationId {
            routing_key: routing_key.to_owned(),
        });
    }
    if exchange_kind == Exchange::Events {
        return Ok(MessageKind::Event);
    }
    if non_empty(&properties.reply_to).is_some() {
        return Ok(MessageKind::Command);
    }
    if properties.headers.get(STATUS_HEADER).is_some_and(truthy) {
        return Ok(MessageKind::Result);
    }
    Err(InvalidDelivery::NeitherReplyToNorStatus {
        routing_key: routing_key.to_owned(),
    })
}

impl Envelope {
    /// Classifies a delivery and splits its properties into the envelope
    /// and the broker metadata handed to handlers.
    pub fn from_delivery(
        delivery: DeliveryInfo<'_>,
        properties: &Properties,
    ) -> Result<(Envelope, Meta), InvalidDelivery> {
        let kind = classify(delivery.exchange, delivery.routing_key, properties)?;
        let mut headers = properties.headers.clone();
        let conversation_id = headers
            .remove(CONVERSATION_ID_HEADER)
            .and_then(|v| header_text(&v))
            .unwrap_or_default();
        let status = if kind == MessageKind::Result || kind == MessageKind::Command {
            headers
                .remove(STATUS_HEADER)
                .and_then(|v| header_text(&v))
                .filter(|s| !s.is_empty())
                .map(|s| Status::parse(&s))
        } else {
            None
        };
        let envelope = Envelope {
            kind,
            conversation_id,
            correlation_id: non_empty(&properties.correlation_id),
            reply_to: non_empty(&properties.reply_to),
            status: if kind == MessageKind::Result {
                status
            } else {
                None
            },
            content_type: properties.content_type.clone(),
        };
        let meta = Meta {
            timestamp: properties.timestamp,
            expiration: properties.expiration.clone(),
            user_id: properties.user_id.clone(),
            app_id: properties.app_id.clone(),
            delivery_tag: delivery.delivery_tag,
            redelivered: delivery.redelivered,
            exchange: delivery.exchange.to_owned(),
            routing_key: delivery.routing_key.to_owned(),
            headers,
        };
        Ok((envelope, meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(
        conversation: Option<&str>,
        reply_to: Option<&str>,
        status: Option<&str>,
    ) -> Properties {
        let mut p = Properties::default();
        if let Some(c) = conversation {
            p.headers
                .insert(CONVERSATION_ID_HEADER.into(), Value::from(c));
        }
        if let Some(s) = status {
            p.headers.insert(STATUS_HEADER.into(), Value::from(s));
        }
        p.reply_to = reply_to.map(str::to_owned);
        p
    }

    #[test]
    fn events_need_a_conversation_id() {
        assert_eq!(
            classify("events", "e", &props(Some("c"), None, None)),
            Ok(MessageKind::Event)
        );
        // Present but empty is present: eventail tests membership.
        assert_eq!(
            classify("events", "e", &props(Some(""), None, None)),
            Ok(MessageKind::Event)
        );
        assert_eq!(
            classify("events", "e", &props(None, None, None)),
            Err(InvalidDelivery::MissingConversationId {
                routing_key: "e".into()
            })
        );
    }

    #[test]
    fn commands_results_and_invalid_ones() {
        let c = Some("c");
        assert_eq!(
            classify("commands", "k", &props(c, Some("r"), None)),
            Ok(MessageKind::Command)
        );
        assert_eq!(
            classify("commands", "k", &props(c, None, Some("success"))),
            Ok(MessageKind::Result)
        );
        assert_eq!(
            classify("commands", "k", &props(c, None, Some("error"))),
            Ok(MessageKind::Result)
        );
        // reply_to wins over status.
        assert_eq!(
            classify("commands", "k", &props(c, Some("r"), Some("error"))),
            Ok(MessageKind::Command)
        );
        // Empty values count as absent, as pika sends them for "no value".
        for (reply_to, status) in [(None, None), (Some(""), None), (Some(""), Some(""))] {
            assert_eq!(
                classify("commands", "k", &props(c, reply_to, status)),
                Err(InvalidDelivery::NeitherReplyToNorStatus {
                    routing_key: "k".into()
                })
            );
        }
        assert_eq!(
            classify("commands", "k", &props(None, Some("r"), None)),
            Err(InvalidDelivery::MissingConversationId {
                routing_key: "k".into()
            })
        );
    }

    #[test]
    fn configurations_and_logs_need_no_conversation_id() {
        assert_eq!(
            classify("configurations", "k", &props(None, None, None)),
            Ok(MessageKind::Configuration)
        );
        assert_eq!(
            classify("logs", "svc.INFO", &props(None, None, None)),
            Ok(MessageKind::Log)
        );
        assert_eq!(
            classify("", "q", &props(Some("c"), None, None)),
            Err(InvalidDelivery::UnknownExchange {
                exchange: "".into(),
                routing_key: "q".into()
            })
        );
    }

    #[test]
    fn envelope_and_meta_split_the_properties() {
        let mut p = props(Some("conv"), None, Some("error"));
        p.correlation_id = Some("corr".into());
        p.reply_to = Some(String::new());
        p.content_type = Some("application/json".into());
        p.timestamp = Some(1_700_000_000);
        p.app_id = Some("app".into());
        p.headers.insert("x-death".into(), Value::Array(vec![]));
        let info = DeliveryInfo {
            exchange: "commands",
            routing_key: "ping.EchoReturn",
            delivery_tag: 7,
            redelivered: true,
        };
        let (env, meta) = Envelope::from_delivery(info, &p).unwrap();
        assert_eq!(env.kind, MessageKind::Result);
        assert_eq!(env.conversation_id, "conv");
        assert_eq!(env.correlation_id.as_deref(), Some("corr"));
        assert_eq!(env.reply_to, None);
        assert_eq!(env.status, Some(Status::Error));
        assert_eq!(env.content_type.as_deref(), Some("application/json"));
        assert_eq!(meta.delivery_tag, 7);
        assert!(meta.redelivered);
        assert_eq!(meta.timestamp, Some(1_700_000_000));
        assert_eq!(meta.app_id.as_deref(), Some("app"));
        assert_eq!(meta.routing_key, "ping.EchoReturn");
        // conversation_id and status are envelope fields, not meta headers.
        assert_eq!(meta.headers.keys().collect::<Vec<_>>(), ["x-death"]);
    }

    #[test]
    fn non_text_status_follows_python_truthiness() {
        let mut p = props(Some("c"), None, None);
        p.headers.insert(STATUS_HEADER.into(), Value::from(1));
        assert_eq!(classify("commands", "k", &p), Ok(MessageKind::Result));
        let info = DeliveryInfo {
            exchange: "commands",
            routing_key: "k",
            delivery_tag: 1,
            redelivered: false,
        };
        let (env, _) = Envelope::from_delivery(info, &p).unwrap();
        assert_eq!(env.status, Some(Status::Other("1".into())));
        p.headers.insert(STATUS_HEADER.into(), Value::from(0));
        assert!(classify("commands", "k", &p).is_err());
        p.headers.insert(STATUS_HEADER.into(), Value::Bool(false));
        assert!(classify("commands", "k", &p).is_err());
    }

    #[test]
    fn status_parsing() {
        assert_eq!(Status::parse("success"), Status::Success);
        assert_eq!(Status::parse("error"), Status::Error);
        assert_eq!(Status::parse("weird").as_str(), "weird");
        assert_eq!(Status::Success.to_string(), "success");
    }
}
