//! `bus send`: a command and its result, on bus-service's request client.

use std::time::Duration;

use bus_core::{CONVERSATION_ID_HEADER, Codec, Properties, STATUS_HEADER, Status, Value};
use bus_service::{CallOptions, Client, Reply};

use crate::broker::{Brokers, CONNECT_TIMEOUT};
use crate::cli::SendArgs;
use crate::confirm::{call_error, run_error};
use crate::exit::{self, CliError};
use crate::output::Output;
use crate::payload;
use crate::view::Seen;

/// Checks `SERVICE.COMMAND`.
pub(crate) fn check_command(command: &str) -> Result<(), CliError> {
    bus_core::validate_routing_key(command).map_err(|source| CliError::RoutingKey {
        what: "command",
        key: command.to_owned(),
        source,
    })?;
    match command.split_once('.') {
        Some((service, name)) if !service.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(CliError::Usage(format!(
            "invalid command {command:?}: expected SERVICE.COMMAND, e.g. pong.EchoMessage"
        ))),
    }
}

/// Sends the command; exit code 0 on `success`, 1 on any other status.
pub(crate) async fn run(
    args: SendArgs,
    brokers: &Brokers,
    out: &mut Output,
) -> Result<u8, CliError> {
    check_command(&args.command)?;
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--timeout: invalid number of seconds {}",
                args.timeout
            ))
        })?;
    let codec = Codec::from(args.codec);
    let body = payload::encode(&payload::read(&args.payload)?, codec)?;
    let client = Client::connect(brokers.builder("bus-send").codec(codec), CONNECT_TIMEOUT)
        .await
        .map_err(run_error)?;
    let options = CallOptions {
        timeout,
        conversation_id: args.conversation_id.clone(),
    };
    let result = client.call_encoded(&args.command, body, options).await;
    let _ = tokio::time::timeout(Duration::from_secs(6), client.close()).await;
    let reply = result.map_err(call_error)?;
    let seen = seen(&reply);
    let view = seen.view();
    if out.is_json() {
        let mut record = view.to_json();
        record["command"] = args.command.clone().into();
        out.record(&record)?;
    } else {
        out.text(&view.to_text(None))?;
    }
    Ok(if reply.status == Status::Success {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// The result as a message seen on the reply queue, to show it like any other.
fn seen(reply: &Reply) -> Seen {
    let meta = &reply.meta;
    let mut properties = Properties {
        content_type: Some(reply.codec().content_type().to_owned()),
        correlation_id: Some(reply.correlation_id.clone()),
        timestamp: meta.timestamp,
        expiration: meta.expiration.clone(),
        user_id: meta.user_id.clone(),
        app_id: meta.app_id.clone(),
        headers: meta.headers.clone(),
        ..Properties::default()
    };
    properties.headers.insert(
        CONVERSATION_ID_HEADER.into(),
        Value::from(reply.conversation_id.as_str()),
    );
    properties
        .headers
        .insert(STATUS_HEADER.into(), Value::from(reply.status.as_str()));
    Seen {
        exchange: meta.exchange.clone(),
        routing_key: meta.routing_key.clone(),
        delivery_tag: meta.delivery_tag,
        redelivered: meta.redelivered,
        properties,
        body: reply.body().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_name_a_service() {
        assert!(check_command("pong.EchoMessage").is_ok());
        assert!(check_command("pong.a.b").is_ok());
        for bad in ["pong", ".Echo", "pong.", ""] {
            let err = check_command(bad).unwrap_err();
            assert_eq!(err.code(), exit::USAGE, "{bad}");
        }
    }
}
