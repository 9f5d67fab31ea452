//! An incoming message as a handler sees it.

use std::sync::Arc;

use bus_core::{Codec, Envelope, MessageKind, Meta, Status, Value};
use serde::de::DeserializeOwned;

use crate::HandlerError;

/// A delivery that passed the protocol checks, ready for a handler.
///
/// The body is kept encoded: a typed handler decodes it straight into its
/// own type with [`Message::payload`], a dynamic one into a [`Value`] with
/// [`Message::value`]. The runtime has already checked that the body is
/// well-formed for its content type.
#[derive(Debug, Clone)]
pub struct Message {
    pub(crate) envelope: Envelope,
    pub(crate) meta: Arc<Meta>,
    pub(crate) body: Vec<u8>,
}

impl Message {
    pub(crate) fn new(envelope: Envelope, meta: Meta, body: Vec<u8>) -> Message {
        Message {
            envelope,
            meta: Arc::new(meta),
            body,
        }
    }

    /// What the message is.
    pub fn kind(&self) -> MessageKind {
        self.envelope.kind
    }

    /// The routing key: the event, command, result or configuration name.
    pub fn routing_key(&self) -> &str {
        &self.meta.routing_key
    }

    /// The conversation the message belongs to (empty on configurations).
    pub fn conversation_id(&self) -> &str {
        &self.envelope.conversation_id
    }

    /// The correlation id of a command or result.
    pub fn correlation_id(&self) -> Option<&str> {
        self.envelope.correlation_id.as_deref()
    }

    /// Where the result of a command goes.
    pub fn reply_to(&self) -> Option<&str> {
        self.envelope.reply_to.as_deref()
    }

    /// The status of a result.
    pub fn status(&self) -> Option<&Status> {
        self.envelope.status.as_ref()
    }

    /// Broker metadata: delivery tag, redelivered flag, timestamp, other headers.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The delivery tag, for a manual [`ack`](crate::Context::ack).
    pub fn delivery_tag(&self) -> u64 {
        self.meta.delivery_tag
    }

    /// The codec of the body, from its content type.
    pub fn codec(&self) -> Codec {
        Codec::for_content_type(self.envelope.content_type.as_deref())
    }

    /// The encoded body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Decodes the body into `T`.
    ///
    /// A body that does not fit `T` gives [`HandlerError::InvalidPayload`]:
    /// returned from a handler, it dead-letters the message at once, since a
    /// retry cannot fix it.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        self.codec()
            .decode(&self.body)
            .map_err(HandlerError::InvalidPayload)
    }

    /// Decodes the body into a dynamic [`Value`].
    pub fn value(&self) -> Result<Value, HandlerError> {
        self.codec()
            .decode_value(&self.body)
            .map_err(HandlerError::InvalidPayload)
    }
}
