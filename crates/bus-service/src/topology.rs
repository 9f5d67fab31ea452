//! Declaring what a service needs on the broker: the four exchanges, its
//! queues and bindings. See `docs/protocol.md`, "Queues" and "Bindings".

use amqprs::FieldTable;
use amqprs::channel::{
    Channel, ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use bus_core::{Exchange, commands_queue, events_queue};

use crate::config::Config;
use crate::properties::field_value;
use crate::service::Subscriptions;

/// The queues a session consumes, by their actual names.
#[derive(Debug, Default)]
pub(crate) struct Queues {
    pub(crate) events: Option<String>,
    pub(crate) commands: Option<String>,
    pub(crate) configurations: Option<String>,
}

/// The keys of the builder and of the service, without duplicates.
pub(crate) fn merged(config: &Config, extra: &Subscriptions) -> Subscriptions {
    fn merge(a: &[String], b: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(a.len() + b.len());
        for key in a.iter().chain(b) {
            if !out.contains(key) {
                out.push(key.clone());
            }
        }
        out
    }
    Subscriptions {
        events: merge(&config.event_keys, &extra.events),
        commands: merge(&config.command_keys, &extra.commands),
        configurations: merge(&config.config_keys, &extra.configurations),
    }
}

/// Declares the exchanges, then each queue that has keys, and binds it.
pub(crate) async fn declare(
    channel: &Channel,
    config: &Config,
    keys: &Subscriptions,
) -> Result<Queues, amqprs::error::Error> {
    for exchange in Exchange::ALL {
        declare_exchange(channel, exchange).await?;
    }
    let mut queues = Queues::default();
    if !keys.events.is_empty() {
        let name = declare_queue(channel, config, Some(&events_queue(&config.name))).await?;
        bind(channel, &name, Exchange::Events, &keys.events).await?;
        queues.events = Some(name);
    }
    if !keys.commands.is_empty() {
        let name = declare_queue(channel, config, Some(&commands_queue(&config.name))).await?;
        bind(channel, &name, Exchange::Commands, &keys.commands).await?;
        queues.commands = Some(name);
    }
    if !keys.configurations.is_empty() {
        // Every instance must see every configuration: a queue of its own.
        let name = declare_queue(channel, config, None).await?;
        bind(
            channel,
            &name,
            Exchange::Configurations,
            &keys.configurations,
        )
        .await?;
        queues.configurations = Some(name);
    }
    Ok(queues)
}

/// Declares one of the four exchanges with the protocol's settings
/// (durable topic exchange, no arguments).
pub async fn declare_exchange(
    channel: &Channel,
    exchange: Exchange,
) -> Result<(), amqprs::error::Error> {
    channel
        .exchange_declare(
            ExchangeDeclareArguments::new(exchange.name(), Exchange::KIND)
                .durable(Exchange::DURABLE)
                .finish(),
        )
        .await
}

/// A shared durable queue, or an exclusive server-named one for `None` and
/// in exclusive-queues mode (tools).
async fn declare_queue(
    channel: &Channel,
    config: &Config,
    shared_name: Option<&str>,
) -> Result<String, amqprs::error::Error> {
    let args = match shared_name {
        Some(name) if !config.exclusive_queues => {
            let mut arguments = FieldTable::new();
            // Checked when the service was built: conversion cannot fail here.
            for (key, value) in &config.queue_arguments {
                if let (Ok(name), Ok(value)) = (key.as_str().try_into(), field_value(key, value)) {
                    arguments.insert(name, value);
                }
            }
            QueueDeclareArguments::durable_client_named(name)
                .arguments(arguments)
                .finish()
        }
        _ => QueueDeclareArguments::exclusive_server_named()
            .auto_delete(true)
            .finish(),
    };
    let declared = channel.queue_declare(args).await?;
    let (name, _, _) = declared
        .ok_or_else(|| amqprs::error::Error::ChannelUseError("queue.declare-ok missing".into()))?;
    Ok(name)
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: Exchange,
    keys: &[String],
) -> Result<(), amqprs::error::Error> {
    for key in keys {
        channel
            .queue_bind(QueueBindArguments::new(queue, exchange.name(), key))
            .await?;
    }
    Ok(())
}
