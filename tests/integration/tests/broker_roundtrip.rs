//! A message goes through the real broker and comes back unchanged.
//!
//! This is the first end-to-end check of the protocol crate against
//! RabbitMQ: `bus_core` builds events (exchange, routing key, properties and
//! payload), amqprs publishes them, and what the broker delivers must decode
//! to the same properties and payload, for both codecs.

use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments, QueueDeleteArguments,
};
use bus_core::{CONVERSATION_ID_HEADER, Codec, Exchange, OutgoingMessage, PERSISTENT, Value};
use bus_test_support::amqp_props::{from_amqprs, to_amqprs};
use bus_test_support::{amqp_url, connect, unique};

const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

fn payload(codec: Codec) -> Value {
    Value::map([
        ("codec", Value::from(codec.content_type())),
        ("count", Value::from(-42)),
        ("large", Value::from(u64::MAX)),
        ("ratio", Value::from(0.1)),
        ("text", Value::from("héllo ✓")),
        ("flags", Value::from(vec![Value::Bool(true), Value::Null])),
        (
            "nested",
            Value::map([("z", Value::from(1)), ("a", Value::from(2))]),
        ),
    ])
}

#[tokio::test]
async fn cbor_and_json_events_round_trip_through_the_broker() {
    let url = amqp_url();
    let connection = connect(&url, &unique("broker-roundtrip"))
        .await
        .expect("connect");
    let channel = connection.open_channel(None).await.expect("open channel");

    for exchange in Exchange::ALL {
        channel
            .exchange_declare(
                ExchangeDeclareArguments::new(exchange.name(), Exchange::KIND)
                    .durable(Exchange::DURABLE)
                    .finish(),
            )
            .await
            .unwrap_or_else(|e| panic!("declare exchange {exchange}: {e}"));
    }

    // Exclusive: the broker deletes it with the connection, even when an
    // assertion below fails before the explicit delete.
    let queue = unique("roundtrip");
    channel
        .queue_declare(QueueDeclareArguments::new(&queue).exclusive(true).finish())
        .await
        .expect("declare queue");
    let routing_key = format!("{}.happened", unique("roundtrip"));
    channel
        .queue_bind(QueueBindArguments::new(
            &queue,
            Exchange::Events.name(),
            &routing_key,
        ))
        .await
        .expect("bind queue");

    let mut sent = Vec::new();
    for codec in [Codec::Cbor, Codec::Json] {
        let value = payload(codec);
        let body = codec.encode_value(&value).expect("encode");
        let conversation_id = unique("conversation");
        let msg = OutgoingMessage::event(&routing_key, codec, body, &conversation_id)
            .expect("valid event");
        channel
            .basic_publish(
                to_amqprs(&msg.properties),
                msg.body.clone(),
                BasicPublishArguments::new(msg.exchange.name(), &msg.routing_key)
                    .mandatory(msg.mandatory)
                    .finish(),
            )
            .await
            .expect("publish");
        sent.push((codec, value, conversation_id, msg));
    }

    let (_tag, mut deliveries) = channel
        .basic_consume_rx(
            BasicConsumeArguments::new(&queue, &unique("consumer"))
                .manual_ack(true)
                .finish(),
        )
        .await
        .expect("consume");

    for (codec, value, conversation_id, msg) in sent {
        let delivery = tokio::time::timeout(RECEIVE_TIMEOUT, deliveries.recv())
            .await
            .unwrap_or_else(|_| panic!("no {codec:?} message within {RECEIVE_TIMEOUT:?}"))
            .expect("consumer channel open");
        let deliver = delivery.deliver.expect("deliver method");
        let properties = from_amqprs(&delivery.basic_properties.expect("properties"));
        let body = delivery.content.expect("content");

        assert_eq!(deliver.exchange(), Exchange::Events.name());
        assert_eq!(deliver.routing_key(), &routing_key);
        let content_type = properties.content_type.as_deref();
        assert_eq!(content_type, Some(codec.content_type()));
        assert_eq!(properties.delivery_mode, Some(PERSISTENT));
        assert_eq!(
            properties.headers.get(CONVERSATION_ID_HEADER),
            Some(&Value::from(conversation_id.as_str()))
        );
        assert_eq!(
            properties, msg.properties,
            "all properties come back as sent"
        );
        let received = Codec::for_content_type(content_type)
            .decode_value(&body)
            .expect("decode");
        assert_eq!(received, value);

        channel
            .basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
            .await
            .expect("ack");
    }

    channel
        .queue_delete(QueueDeleteArguments::new(&queue))
        .await
        .expect("delete queue");
    channel.close().await.expect("close channel");
    connection.close().await.expect("close connection");
}
