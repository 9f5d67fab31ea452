//! What the in-memory bus saw: every message published on it, and every
//! message it dead-lettered.

use amqprs::BasicProperties;
use bus_core::{Codec, DecodeError, Exchange, Properties, Value};
use serde::de::DeserializeOwned;

/// One message as a client published it, in publication order.
#[derive(Debug, Clone)]
pub struct Published {
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Its properties, headers included.
    pub properties: Properties,
    /// Its body, as published.
    pub body: Vec<u8>,
}

impl Published {
    pub(crate) fn new(
        exchange: &str,
        routing_key: &str,
        properties: &BasicProperties,
        body: &[u8],
    ) -> Self {
        Published {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            properties: crate::properties::from_amqp(properties),
            body: body.to_vec(),
        }
    }

    /// Whether it went to this bus exchange.
    pub fn is_on(&self, exchange: Exchange) -> bool {
        self.exchange == exchange.name()
    }

    /// A result: on `commands`, routed to the caller's `reply_to`, with a
    /// `status` header.
    pub fn is_result(&self) -> bool {
        self.is_on(Exchange::Commands) && self.properties.headers.contains_key("status")
    }

    /// A command: on `commands`, without a `status` header.
    pub fn is_command(&self) -> bool {
        self.is_on(Exchange::Commands) && !self.properties.headers.contains_key("status")
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&Value> {
        self.properties.headers.get(name)
    }

    /// A text header (`status`, `conversation_id`, ...).
    pub fn header_text(&self, name: &str) -> Option<&str> {
        self.header(name)?.as_str()
    }

    /// The body decoded with the codec its content type names.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        self.codec().decode(&self.body)
    }

    /// The body decoded as a dynamic value.
    pub fn value(&self) -> Result<Value, DecodeError> {
        self.codec().decode_value(&self.body)
    }

    fn codec(&self) -> Codec {
        Codec::for_content_type(self.properties.content_type.as_deref())
    }
}

/// A message the bus dead-lettered, with the queue it died in.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The queue whose consumer rejected it.
    pub queue: String,
    /// The message, with the `x-death` headers RabbitMQ would add.
    pub message: Published,
}

impl DeadLetter {
    pub(crate) fn new(queue: &str, message: &Published) -> Self {
        DeadLetter {
            queue: queue.to_owned(),
            message: message.clone(),
        }
    }
}
