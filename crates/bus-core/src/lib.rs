//! The wire protocol of the bus, compatible with eventail 2.3.6.
//!
//! This crate is the single place where the protocol's rules live: the
//! exchanges and queue names, routing keys and topic matching, the envelope
//! of a message and how a delivery is classified, the CBOR and JSON codecs,
//! GELF log records and broker URLs. It does no network I/O and depends on
//! no async runtime, so every rule is unit-tested without a broker.
//!
//! The protocol itself is written down in `docs/protocol.md`.
//!
//! ```
//! use bus_core::{Codec, OutgoingMessage, Value};
//!
//! let payload = Value::map([("message", Value::from("hello"))]);
//! let body = Codec::Cbor.encode_value(&payload)?;
//! let msg = OutgoingMessage::command("pong.EchoMessage", Codec::Cbor, body, "conv-1", "ping.EchoReturn", "1")?;
//! assert!(msg.mandatory);
//! assert_eq!(Codec::Cbor.decode_value(&msg.body)?, payload);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod envelope;
mod exchange;
mod gelf;
mod ids;
mod outgoing;
mod payload_file;
mod routing_key;
mod url;
mod value;

pub use codec::{CBOR_CONTENT_TYPE, Codec, DecodeError, EncodeError, JSON_CONTENT_TYPE};
pub use envelope::{
    CONVERSATION_ID_HEADER, DeliveryInfo, Envelope, InvalidDelivery, MessageKind, Meta, PERSISTENT,
    Properties, STATUS_HEADER, Status, classify,
};
pub use exchange::{Exchange, commands_queue, events_queue};
pub use gelf::{GelfError, GelfRecord, LogLevel, LogSource, UnknownLogLevel};
pub use ids::{new_conversation_id, new_correlation_id};
pub use outgoing::OutgoingMessage;
pub use payload_file::{
    PayloadFileError, decode_payload_file, payload_file_codec, read_payload_file,
};
pub use routing_key::{MAX_ROUTING_KEY_BYTES, RoutingKeyError, TopicPattern, validate_routing_key};
pub use url::{BrokerUrl, DEFAULT_URL, UrlError};
pub use value::Value;
