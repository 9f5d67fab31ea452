//! The live views (`logger`, `monitor`): an exclusive, auto-deleted,
//! server-named queue bound to the chosen patterns, consumed without acks,
//! and rebuilt after a connection loss.
//!
//! A tool queue holds nothing worth keeping: no acks (the broker forgets a
//! message once sent) and nothing published. See docs/decisions.md.

use std::collections::BTreeSet;
use std::time::Duration;

use amqprs::channel::{
    BasicConsumeArguments, Channel, ConsumerMessage, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::Connection;
use bus_core::Exchange;
use bus_service::raw::{
    BrokerEvent, ChannelEvents, ConnectionEvents, declare_exchange, properties_from_amqp,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::broker::{self, Brokers};
use crate::cli::Limits;
use crate::exit::{self, CliError};
use crate::output::notice;
use crate::view::Seen;

/// Longest wait between two reconnection attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// A session that lasted this long was working: the next one starts at once.
const STABLE_SESSION: Duration = Duration::from_secs(5);

/// 1 s more after each failure in a row, up to 30 s (eventail's policy).
fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(u64::from(failures)).min(MAX_RETRY_DELAY)
}

/// What the handler did with a message.
pub(crate) enum Step {
    /// It was shown: it counts towards `--count`.
    Shown,
    /// It was filtered out.
    Skipped,
}

/// A live view to run.
pub(crate) struct Watch<'a> {
    pub(crate) brokers: &'a Brokers,
    /// The connection name prefix, e.g. `bus-monitor`.
    pub(crate) tool: &'a str,
    /// What to bind the queue to.
    pub(crate) bindings: Vec<(Exchange, String)>,
    pub(crate) limits: &'a Limits,
}

/// How a session on one connection ended.
enum End {
    /// Stop: signal, `--count` reached, or `--timeout`; the exit code.
    Done(u8),
    /// The connection or channel was lost: reconnect.
    Lost(String),
    /// The handler or the setup failed: exit.
    Failed(CliError),
}

/// Where the view stops.
struct Stops {
    signal: watch::Receiver<bool>,
    deadline: Option<Instant>,
    count: Option<u64>,
    shown: u64,
}

impl Stops {
    /// The exit code when the deadline passes: a `--count` not reached is a
    /// timeout, a plain `--timeout` is the normal end.
    fn at_deadline(&self) -> u8 {
        if self.count.is_some() {
            exit::TIMEOUT
        } else {
            exit::OK
        }
    }

    /// Completes on SIGINT, SIGTERM or SIGHUP. Borrows nothing, so the
    /// other branches of a `select!` may use `self`.
    fn signalled(&self) -> impl Future<Output = ()> + use<> {
        let mut signal = self.signal.clone();
        async move {
            let _ = signal.wait_for(|stop| *stop).await;
        }
    }

    /// Completes at `--timeout`, never without one.
    fn deadline(&self) -> impl Future<Output = ()> + use<> {
        let at = self.deadline;
        async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        }
    }
}

/// Parses `--timeout`.
pub(crate) fn timeout(seconds: Option<f64>) -> Result<Option<Duration>, CliError> {
    seconds
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .map_err(|_| CliError::Usage(format!("--timeout: invalid number of seconds {s}")))
        })
        .transpose()
}

/// Runs the view until a signal, `--count` or `--timeout`; returns the exit code.
pub(crate) async fn run(
    w: Watch<'_>,
    mut handle: impl FnMut(Seen) -> Result<Step, CliError>,
) -> Result<u8, CliError> {
    let deadline = timeout(w.limits.timeout)?.map(|t| Instant::now() + t);
    if w.limits.count == Some(0) {
        return Ok(exit::OK);
    }
    let (signal_tx, signal) = watch::channel(false);
    tokio::spawn(async move {
        bus_service::termination_signal().await;
        let _ = signal_tx.send(true);
    });
    let mut stops = Stops {
        signal,
        deadline,
        count: w.limits.count,
        shown: 0,
    };
    let mut sessions = 0u64;
    let mut failures = 0u32;
    loop {
        let connected = tokio::select! {
            connected = w.brokers.connect(w.tool) => connected,
            () = stops.signalled() => return Ok(exit::OK),
            () = stops.deadline() => return Ok(stops.at_deadline()),
        };
        let connection = match connected {
            Ok(connection) => connection,
            Err(error) if sessions == 0 => return Err(error.into()),
            Err(error) => {
                failures += 1;
                let delay = retry_delay(failures);
                notice(&format!(
                    "cannot reconnect: {error}; next try in {} s",
                    delay.as_secs()
                ));
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = stops.signalled() => return Ok(exit::OK),
                    () = stops.deadline() => return Ok(stops.at_deadline()),
                }
            }
        };
        sessions += 1;
        let started = Instant::now();
        let end = session(&connection, &w, sessions, &mut stops, &mut handle).await;
        match end {
            End::Done(code) => {
                broker::close(connection).await;
                return Ok(code);
            }
            End::Failed(error) => {
                broker::close(connection).await;
                return Err(error);
            }
            End::Lost(reason) => {
                // The old connection may be half dead: do not wait for it.
                tokio::spawn(broker::close(connection));
                // Reconnect at once after a session that lasted, but back
                // off when sessions keep failing right away.
                let delay = if started.elapsed() >= STABLE_SESSION {
                    failures = 0;
                    Duration::ZERO
                } else {
                    failures += 1;
                    retry_delay(failures)
                };
                notice(&format!(
                    "connection lost ({reason}); reconnecting in {} s",
                    delay.as_secs()
                ));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stops.signalled() => return Ok(exit::OK),
                    () = stops.deadline() => return Ok(stops.at_deadline()),
                }
            }
        }
    }
}

async fn setup(
    connection: &Connection,
    bindings: &[(Exchange, String)],
    events: mpsc::UnboundedSender<BrokerEvent>,
) -> Result<(Channel, mpsc::UnboundedReceiver<ConsumerMessage>), amqprs::error::Error> {
    connection
        .register_callback(ConnectionEvents(events.clone()))
        .await?;
    let channel = connection.open_channel(None).await?;
    channel.register_callback(ChannelEvents(events)).await?;
    let exchanges: BTreeSet<Exchange> = bindings.iter().map(|(e, _)| *e).collect();
    for exchange in exchanges {
        declare_exchange(&channel, exchange).await?;
    }
    let declared = channel
        .queue_declare(
            QueueDeclareArguments::exclusive_server_named()
                .auto_delete(true)
                .finish(),
        )
        .await?;
    let (queue, _, _) = declared
        .ok_or_else(|| amqprs::error::Error::ChannelUseError("no queue.declare-ok".into()))?;
    for (exchange, pattern) in bindings {
        channel
            .queue_bind(QueueBindArguments::new(&queue, exchange.name(), pattern))
            .await?;
    }
    let (_, deliveries) = channel
        .basic_consume_rx(
            BasicConsumeArguments::new(&queue, "")
                .manual_ack(false)
                .exclusive(true)
                .finish(),
        )
        .await?;
    // The channel is returned, not dropped: dropping an amqprs channel
    // closes it.
    Ok((channel, deliveries))
}

fn describe(bindings: &[(Exchange, String)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for exchange in Exchange::ALL {
        let patterns: Vec<&str> = bindings
            .iter()
            .filter(|(e, _)| *e == exchange)
            .map(|(_, p)| p.as_str())
            .collect();
        if !patterns.is_empty() {
            parts.push(format!("{exchange} {}", patterns.join(" ")));
        }
    }
    parts.join(", ")
}

async fn session(
    connection: &Connection,
    w: &Watch<'_>,
    number: u64,
    stops: &mut Stops,
    handle: &mut impl FnMut(Seen) -> Result<Step, CliError>,
) -> End {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (_channel, mut deliveries) = match setup(connection, &w.bindings, events_tx).await {
        Ok(opened) => opened,
        Err(error) if number == 1 => {
            return End::Failed(broker::explain(error, &mut events, None).await);
        }
        Err(error) => return End::Lost(error.to_string()),
    };
    let verb = if number == 1 {
        "watching"
    } else {
        "reconnected; watching"
    };
    notice(&format!(
        "{verb} {} (Ctrl-C to stop)",
        describe(&w.bindings)
    ));
    let io_failure = connection.listen_network_io_failure();
    tokio::pin!(io_failure);
    loop {
        tokio::select! {
            biased;
            () = stops.signalled() => return End::Done(exit::OK),
            () = stops.deadline() => return End::Done(stops.at_deadline()),
            delivery = deliveries.recv() => {
                let Some(delivery) = delivery else {
                    return End::Lost("the broker ended the consumer".into());
                };
                let Some(seen) = seen(delivery) else { continue };
                match handle(seen) {
                    Ok(Step::Shown) => {
                        stops.shown += 1;
                        if stops.count.is_some_and(|n| stops.shown >= n) {
                            return End::Done(exit::OK);
                        }
                    }
                    Ok(Step::Skipped) => {}
                    Err(error) => return End::Failed(error),
                }
            }
            event = events.recv() => match event {
                Some(BrokerEvent::ConnectionClosed { code, text }) => {
                    return End::Lost(format!("closed by the broker: {code} {text}"));
                }
                Some(BrokerEvent::ChannelClosed { code, text }) => {
                    return End::Lost(format!("channel closed by the broker: {code} {text}"));
                }
                Some(BrokerEvent::ConsumerCancelled { .. }) => {
                    return End::Lost("the broker cancelled the consumer".into());
                }
                _ => {}
            },
            _ = &mut io_failure => return End::Lost("network failure or missed heartbeats".into()),
        }
    }
}

fn seen(delivery: ConsumerMessage) -> Option<Seen> {
    let deliver = delivery.deliver?;
    Some(Seen {
        exchange: deliver.exchange().clone(),
        routing_key: deliver.routing_key().clone(),
        delivery_tag: deliver.delivery_tag(),
        redelivered: deliver.redelivered(),
        properties: delivery
            .basic_properties
            .as_ref()
            .map(properties_from_amqp)
            .unwrap_or_default(),
        body: delivery.content.unwrap_or_default(),
    })
}
