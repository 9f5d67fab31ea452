//! `bus publish` (an event) and `bus config` (a configuration).

use bus_core::{Codec, Exchange, OutgoingMessage, Value, new_conversation_id};
use serde_json::json;

use crate::broker::Brokers;
use crate::cli::{ConfigArgs, PublishArgs};
use crate::confirm::{self, Fate};
use crate::exit::{self, CliError};
use crate::output::{DIM, GOOD, KEY, Output, paint};
use crate::payload;

fn invalid_key(
    what: &'static str,
    key: &str,
) -> impl FnOnce(bus_core::RoutingKeyError) -> CliError {
    let key = key.to_owned();
    move |source| CliError::RoutingKey { what, key, source }
}

/// Publishes the event; exit 3 when `--mandatory` and nobody listens.
pub(crate) async fn publish(
    args: PublishArgs,
    brokers: &Brokers,
    out: &mut Output,
) -> Result<u8, CliError> {
    bus_core::validate_routing_key(&args.event).map_err(invalid_key("event name", &args.event))?;
    let codec = Codec::from(args.codec);
    let value = payload::read(&args.payload)?;
    let body = payload::encode(&value, codec)?;
    let conversation_id = args
        .conversation_id
        .clone()
        .unwrap_or_else(new_conversation_id);
    let message = OutgoingMessage::event(&args.event, codec, body, &conversation_id)
        .map_err(invalid_key("event name", &args.event))?
        .with_mandatory(args.mandatory);
    let fate = confirm::publish(brokers, "bus-publish", message).await?;
    report(
        out,
        Report {
            kind: "event",
            exchange: Exchange::Events,
            key: &args.event,
            conversation_id: Some(&conversation_id),
            codec,
            mandatory: args.mandatory,
            payload: &value,
            fate: &fate,
        },
    )?;
    match fate {
        Fate::Confirmed => Ok(exit::OK),
        Fate::Returned(returned) => Err(CliError::Unroutable(format!(
            "no queue is bound for event {} ({} {}): nobody received it",
            args.event, returned.reply_code, returned.reply_text
        ))),
    }
}

/// Publishes the configuration.
pub(crate) async fn config(
    args: ConfigArgs,
    brokers: &Brokers,
    out: &mut Output,
) -> Result<u8, CliError> {
    bus_core::validate_routing_key(&args.name)
        .map_err(invalid_key("configuration name", &args.name))?;
    let codec = Codec::from(args.codec);
    let value = payload::read(&args.payload)?;
    let body = payload::encode(&value, codec)?;
    let message = OutgoingMessage::configuration(&args.name, codec, body)
        .map_err(invalid_key("configuration name", &args.name))?;
    let fate = confirm::publish(brokers, "bus-config", message).await?;
    report(
        out,
        Report {
            kind: "configuration",
            exchange: Exchange::Configurations,
            key: &args.name,
            conversation_id: None,
            codec,
            mandatory: false,
            payload: &value,
            fate: &fate,
        },
    )?;
    Ok(exit::OK)
}

struct Report<'a> {
    kind: &'static str,
    exchange: Exchange,
    key: &'a str,
    conversation_id: Option<&'a str>,
    codec: Codec,
    mandatory: bool,
    payload: &'a Value,
    fate: &'a Fate,
}

fn report(out: &mut Output, r: Report<'_>) -> Result<(), CliError> {
    let routed = matches!(r.fate, Fate::Confirmed);
    if out.is_json() {
        out.record(&json!({
            "kind": r.kind,
            "exchange": r.exchange.name(),
            "routing_key": r.key,
            "conversation_id": r.conversation_id,
            "content_type": r.codec.content_type(),
            "delivery_mode": bus_core::PERSISTENT,
            "mandatory": r.mandatory,
            "confirmed": true,
            "routed": if r.mandatory { json!(routed) } else { json!(null) },
            "payload": r.payload.to_display_json(),
        }))?;
        return Ok(());
    }
    let mut text = format!(
        "{} {} {}\n",
        paint(GOOD, "published"),
        r.kind,
        paint(KEY, r.key)
    );
    if let Some(id) = r.conversation_id {
        text.push_str(&format!("  {} {id}\n", paint(DIM, "conversation_id ")));
    }
    let confirmation = if routed {
        "confirmed by the broker"
    } else {
        "confirmed by the broker, but returned: no queue is bound for it"
    };
    text.push_str(&format!(
        "  {} {confirmation}\n",
        paint(DIM, "confirmation    ")
    ));
    out.text(&text)?;
    Ok(())
}
