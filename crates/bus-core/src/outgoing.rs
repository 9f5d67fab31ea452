//! How each kind of message is published: exchange, routing key,
//! properties and the `mandatory` default.
//!
//! See `docs/protocol.md`, section "Publishing".

use crate::envelope::{CONVERSATION_ID_HEADER, PERSISTENT, STATUS_HEADER};
use crate::{Codec, Exchange, Properties, RoutingKeyError, Status, Value, validate_routing_key};

/// A message ready to be published: the protocol's decisions, made once.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// The exchange to publish to.
    pub exchange: Exchange,
    /// The routing key.
    pub routing_key: String,
    /// The properties, headers included.
    pub properties: Properties,
    /// The encoded payload.
    pub body: Vec<u8>,
    /// Whether the broker must return the message when no queue is bound.
    pub mandatory: bool,
}

impl OutgoingMessage {
    fn business(
        exchange: Exchange,
        routing_key: &str,
        codec: Codec,
        body: Vec<u8>,
        conversation_id: &str,
        mandatory: bool,
    ) -> Result<OutgoingMessage, RoutingKeyError> {
        validate_routing_key(routing_key)?;
        let mut properties = Properties {
            content_type: Some(codec.content_type().to_owned()),
            delivery_mode: Some(PERSISTENT),
            ..Properties::default()
        };
        properties.headers.insert(
            CONVERSATION_ID_HEADER.to_owned(),
            Value::from(conversation_id),
        );
        Ok(OutgoingMessage {
            exchange,
            routing_key: routing_key.to_owned(),
            properties,
            body,
            mandatory,
        })
    }

    /// An event: persistent, on `events`, not mandatory by default.
    pub fn event(
        name: &str,
        codec: Codec,
        body: Vec<u8>,
        conversation_id: &str,
    ) -> Result<OutgoingMessage, RoutingKeyError> {
        Self::business(Exchange::Events, name, codec, body, conversation_id, false)
    }

    /// A command: persistent, on `commands`, with `reply_to` and
    /// `correlation_id`, mandatory by default.
    pub fn command(
        command: &str,
        codec: Codec,
        body: Vec<u8>,
        conversation_id: &str,
        reply_to: &str,
        correlation_id: &str,
    ) -> Result<OutgoingMessage, RoutingKeyError> {
        validate_routing_key(reply_to)?;
        let mut msg = Self::business(
            Exchange::Commands,
            command,
            codec,
            body,
            conversation_id,
            true,
        )?;
        msg.properties.reply_to = Some(reply_to.to_owned());
        msg.properties.correlation_id = Some(correlation_id.to_owned());
        Ok(msg)
    }

    /// A result: persistent, on `commands`, routed to the command's
    /// `reply_to`, with the `status` header and the command's
    /// `correlation_id`, mandatory by default.
    pub fn result(
        destination: &str,
        status: &Status,
        codec: Codec,
        body: Vec<u8>,
        conversation_id: &str,
        correlation_id: &str,
    ) -> Result<OutgoingMessage, RoutingKeyError> {
        let mut msg = Self::business(
            Exchange::Commands,
            destination,
            codec,
            body,
            conversation_id,
            true,
        )?;
        msg.properties
            .headers
            .insert(STATUS_HEADER.to_owned(), Value::from(status.as_str()));
        msg.properties.correlation_id = Some(correlation_id.to_owned());
        Ok(msg)
    }

    /// A configuration: persistent, on `configurations`, with an empty
    /// conversation id, not mandatory.
    pub fn configuration(
        name: &str,
        codec: Codec,
        body: Vec<u8>,
    ) -> Result<OutgoingMessage, RoutingKeyError> {
        Self::business(Exchange::Configurations, name, codec, body, "", false)
    }

    /// Sets the `mandatory` flag.
    pub fn with_mandatory(mut self, mandatory: bool) -> OutgoingMessage {
        self.mandatory = mandatory;
        self
    }

    /// The conversation id header, if any.
    pub fn conversation_id(&self) -> Option<&str> {
        self.properties
            .headers
            .get(CONVERSATION_ID_HEADER)
            .and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_defaults() {
        let m = OutgoingMessage::event("user.created", Codec::Cbor, vec![1], "conv").unwrap();
        assert_eq!(m.exchange, Exchange::Events);
        assert_eq!(m.routing_key, "user.created");
        assert!(!m.mandatory);
        assert_eq!(m.properties.delivery_mode, Some(2));
        assert_eq!(
            m.properties.content_type.as_deref(),
            Some("application/cbor")
        );
        assert_eq!(m.conversation_id(), Some("conv"));
        assert_eq!(m.properties.headers.len(), 1);
        assert_eq!(m.properties.reply_to, None);
        assert_eq!(m.properties.correlation_id, None);
    }

    #[test]
    fn command_and_result() {
        let c = OutgoingMessage::command(
            "pong.EchoMessage",
            Codec::Json,
            vec![],
            "conv",
            "ping.EchoReturn",
            "42",
        )
        .unwrap();
        assert_eq!(c.exchange, Exchange::Commands);
        assert!(c.mandatory);
        assert_eq!(c.properties.reply_to.as_deref(), Some("ping.EchoReturn"));
        assert_eq!(c.properties.correlation_id.as_deref(), Some("42"));
        assert_eq!(
            c.properties.content_type.as_deref(),
            Some("application/json")
        );
        assert!(!c.properties.headers.contains_key("status"));

        let r = OutgoingMessage::result(
            "ping.EchoReturn",
            &Status::Error,
            Codec::Cbor,
            vec![],
            "conv",
            "42",
        )
        .unwrap();
        assert_eq!(r.exchange, Exchange::Commands);
        assert_eq!(r.routing_key, "ping.EchoReturn");
        assert!(r.mandatory);
        assert_eq!(
            r.properties.headers.get("status"),
            Some(&Value::from("error"))
        );
        assert_eq!(r.properties.reply_to, None);
        assert_eq!(r.properties.correlation_id.as_deref(), Some("42"));
        assert_eq!(r.properties.delivery_mode, Some(2));
        assert!(!r.with_mandatory(false).mandatory);
    }

    #[test]
    fn configuration_has_empty_conversation() {
        let m = OutgoingMessage::configuration("pong.config", Codec::Cbor, vec![]).unwrap();
        assert_eq!(m.exchange, Exchange::Configurations);
        assert_eq!(m.conversation_id(), Some(""));
        assert!(!m.mandatory);
    }

    #[test]
    fn keys_are_validated() {
        assert!(OutgoingMessage::event("", Codec::Cbor, vec![], "c").is_err());
        assert!(OutgoingMessage::command("a", Codec::Cbor, vec![], "c", "", "1").is_err());
        assert!(
            OutgoingMessage::result(
                &"x".repeat(256),
                &Status::Success,
                Codec::Cbor,
                vec![],
                "c",
                "1"
            )
            .is_err()
        );
    }
}
