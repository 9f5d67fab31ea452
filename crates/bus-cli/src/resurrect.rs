//! `bus resurrect`: move dead letters back to the exchange they first died
//! from.
//!
//! Each message is fetched with `basic.get`, republished persistent and
//! mandatory on the same channel in confirm mode, with its routing key and
//! its properties exactly as the broker sent them (header types included),
//! and acked in the dead-letter queue only once the broker confirms the
//! copy. Copies that are nacked or returned leave their original in place;
//! so do the messages that are not selected. Those are all put back at the
//! end, so each message is looked at once.

use std::collections::HashMap;
use std::time::Duration;

use amqprs::BasicProperties;
use amqprs::channel::{
    BasicAckArguments, BasicPublishArguments, Channel, ConfirmSelectArguments,
    ExchangeDeclareArguments,
};
use amqprs::connection::Connection;
use bus_core::{TopicPattern, Value};
use bus_service::raw::BrokerEvent;
use serde_json::json;
use tokio::sync::mpsc;

use crate::broker::{self, Brokers};
use crate::cli::ResurrectArgs;
use crate::exit::{self, CliError};
use crate::filter;
use crate::output::{BAD, DIM, GOOD, KEY, Output, WARN, paint};
use crate::queue::{self, OpenQueue, get_raw, open_queue, requeue_all};
use crate::view::{FIRST_DEATH_EXCHANGE, Seen};

/// How long the broker may take to confirm a batch.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Moved,
    WouldMove,
    Skipped(String),
    Failed(String),
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::Moved => "moved",
            Action::WouldMove => "would_move",
            Action::Skipped(_) => "skipped",
            Action::Failed(_) => "failed",
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    moved: u64,
    skipped: u64,
    failed: u64,
}

/// A republished copy waiting for its confirm.
struct InFlight {
    seq: u64,
    seen: Seen,
    exchange: String,
    returned: bool,
}

struct Run<'a> {
    args: &'a ResurrectArgs,
    filters: Vec<TopicPattern>,
    connection: &'a Connection,
    channel: &'a Channel,
    events: mpsc::UnboundedReceiver<BrokerEvent>,
    out: &'a mut Output,
    tally: Tally,
    /// Exchange name → whether it exists (checked once each).
    exchanges: HashMap<String, Result<(), String>>,
    seq: u64,
    last_tag: u64,
}

/// Moves the messages; exit 1 if any failed.
pub(crate) async fn run(
    args: ResurrectArgs,
    brokers: &Brokers,
    out: &mut Output,
) -> Result<u8, CliError> {
    let filters = filter::patterns(&args.filter)?;
    let OpenQueue {
        connection,
        channel,
        count: in_queue,
        mut events,
    } = open_queue(brokers, "bus-resurrect", &args.queue).await?;
    if !args.dry_run {
        if let Err(error) = channel
            .confirm_select(ConfirmSelectArguments::default())
            .await
        {
            let error = broker::explain(error, &mut events, None).await;
            broker::close(connection).await;
            return Err(error);
        }
    }
    let limit = args.count.unwrap_or(in_queue).min(in_queue);
    let mut run = Run {
        args: &args,
        filters,
        connection: &connection,
        channel: &channel,
        events,
        out,
        tally: Tally::default(),
        exchanges: HashMap::new(),
        seq: 0,
        last_tag: 0,
    };
    let result = run.all(limit).await;
    // Whatever was not acked goes back: skipped, failed, dry run, or left
    // over by an error.
    let requeued = requeue_all(&channel, run.last_tag).await;
    let tally = std::mem::take(&mut run.tally);
    drop(run);
    broker::close(connection).await;
    result?;
    requeued?;
    summary(out, &tally, args.dry_run)?;
    Ok(if tally.failed > 0 {
        exit::FAILURE
    } else {
        exit::OK
    })
}

impl Run<'_> {
    async fn all(&mut self, limit: u64) -> Result<(), CliError> {
        let batch_size = usize::from(self.args.batch_size.max(1));
        let mut looked = 0;
        let mut batch: Vec<InFlight> = Vec::new();
        while looked < limit {
            let Some((seen, properties)) = get_raw(self.channel, &self.args.queue).await? else {
                break;
            };
            looked += 1;
            self.last_tag = seen.delivery_tag;
            let exchange = match self.target(&seen).await {
                Ok(exchange) => exchange,
                Err(action) => {
                    self.report(&seen, None, &action)?;
                    continue;
                }
            };
            if self.args.dry_run {
                self.report(&seen, Some(&exchange), &Action::WouldMove)?;
                continue;
            }
            self.republish(&seen, &exchange, properties).await?;
            batch.push(InFlight {
                seq: self.seq,
                seen,
                exchange,
                returned: false,
            });
            if batch.len() >= batch_size {
                self.settle(std::mem::take(&mut batch)).await?;
            }
        }
        self.settle(batch).await
    }

    /// Where the message goes back to, or why it stays.
    async fn target(&mut self, seen: &Seen) -> Result<String, Action> {
        if !self.filters.is_empty() && !self.filters.iter().any(|f| f.matches(&seen.routing_key)) {
            return Err(Action::Skipped("not selected by --filter".into()));
        }
        let exchange = match seen.properties.headers.get(FIRST_DEATH_EXCHANGE) {
            Some(Value::Text(name)) => name.clone(),
            Some(Value::Bytes(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            _ => {
                return Err(Action::Skipped(format!(
                    "no {FIRST_DEATH_EXCHANGE} header: not a dead letter"
                )));
            }
        };
        self.exchange_exists(&exchange)
            .await
            .map_err(Action::Failed)?;
        Ok(exchange)
    }

    /// Publishing to a missing exchange would close the channel, and with
    /// it every unacked message: check each exchange once, on a channel of
    /// its own.
    async fn exchange_exists(&mut self, name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Ok(()); // The default exchange always exists.
        }
        if let Some(known) = self.exchanges.get(name) {
            return known.clone();
        }
        let known = if queue::check_name(name).is_err() {
            Err(format!("invalid exchange name {name:?}"))
        } else {
            let probe = async {
                let channel = self.connection.open_channel(None).await?;
                channel
                    .exchange_declare(
                        ExchangeDeclareArguments::new(name, "topic")
                            .passive(true)
                            .finish(),
                    )
                    .await?;
                let _ = channel.close().await;
                Ok::<_, amqprs::error::Error>(())
            };
            probe
                .await
                .map_err(|_| format!("exchange {name:?} does not exist"))
        };
        self.exchanges.insert(name.to_owned(), known.clone());
        known
    }

    async fn republish(
        &mut self,
        seen: &Seen,
        exchange: &str,
        mut properties: BasicProperties,
    ) -> Result<(), CliError> {
        properties.with_delivery_mode(bus_core::PERSISTENT);
        let args = BasicPublishArguments::new(exchange, &seen.routing_key)
            .mandatory(true)
            .finish();
        self.channel
            .basic_publish(properties, seen.body.clone(), args)
            .await
            .map_err(|e| CliError::from_amqp(e, None))?;
        self.seq += 1;
        Ok(())
    }

    /// Waits for the confirms of a batch; acks the originals of the copies
    /// the broker took and routed.
    async fn settle(&mut self, mut batch: Vec<InFlight>) -> Result<(), CliError> {
        while !batch.is_empty() {
            let event = tokio::time::timeout(CONFIRM_TIMEOUT, self.events.recv())
                .await
                .map_err(|_| {
                    CliError::Timeout(format!(
                        "no confirmation from the broker within {} s",
                        CONFIRM_TIMEOUT.as_secs()
                    ))
                })?
                .ok_or_else(|| CliError::Broker("the connection was lost".into()))?;
            let (tag, multiple, ack) = match event {
                BrokerEvent::Ack { tag, multiple } => (tag, multiple, true),
                BrokerEvent::Nack { tag, multiple } => (tag, multiple, false),
                BrokerEvent::Returned(returned) => {
                    // A return comes before the confirm of its message, and
                    // routing depends only on exchange and key: it is the
                    // oldest such copy not yet returned.
                    if let Some(copy) = batch.iter_mut().find(|c| {
                        !c.returned
                            && c.exchange == returned.exchange
                            && c.seen.routing_key == returned.routing_key
                    }) {
                        copy.returned = true;
                    }
                    continue;
                }
                BrokerEvent::ChannelClosed { code, text }
                | BrokerEvent::ConnectionClosed { code, text } => {
                    return Err(CliError::Broker(format!(
                        "the broker closed the connection: {code} {text}"
                    )));
                }
                _ => continue,
            };
            let (done, rest): (Vec<InFlight>, Vec<InFlight>) = batch
                .into_iter()
                .partition(|c| c.seq == tag || (multiple && c.seq <= tag));
            batch = rest;
            for copy in done {
                let action = if !ack {
                    Action::Failed("the broker refused the copy (nack)".into())
                } else if copy.returned {
                    Action::Failed(format!(
                        "unroutable: no queue is bound for {} on {:?}",
                        copy.seen.routing_key, copy.exchange
                    ))
                } else {
                    self.channel
                        .basic_ack(BasicAckArguments::new(copy.seen.delivery_tag, false))
                        .await
                        .map_err(|e| CliError::from_amqp(e, None))?;
                    Action::Moved
                };
                self.report(&copy.seen, Some(&copy.exchange), &action)?;
            }
        }
        Ok(())
    }

    fn report(
        &mut self,
        seen: &Seen,
        exchange: Option<&str>,
        action: &Action,
    ) -> Result<(), CliError> {
        match action {
            Action::Moved | Action::WouldMove => self.tally.moved += 1,
            Action::Skipped(_) => self.tally.skipped += 1,
            Action::Failed(_) => self.tally.failed += 1,
        }
        let reason = match action {
            Action::Skipped(r) | Action::Failed(r) => Some(r.as_str()),
            _ => None,
        };
        if self.out.is_json() {
            self.out.record(&json!({
                "action": action.name(),
                "routing_key": seen.routing_key,
                "exchange": exchange,
                "conversation_id": seen.conversation_id(),
                "delivery_tag": seen.delivery_tag,
                "reason": reason,
            }))?;
            return Ok(());
        }
        let (style, label) = match action {
            Action::Moved => (GOOD, "moved"),
            Action::WouldMove => (GOOD, "would move"),
            Action::Skipped(_) => (WARN, "skipped"),
            Action::Failed(_) => (BAD, "failed"),
        };
        let mut line = format!(
            "{} {}",
            paint(style, &format!("{label:<10}")),
            paint(KEY, &seen.routing_key)
        );
        if let Some(exchange) = exchange {
            line.push_str(&format!(" → {exchange}"));
        }
        if let Some(id) = seen.conversation_id() {
            line.push_str(&format!(" {}", paint(DIM, &format!("[{id}]"))));
        }
        if let Some(reason) = reason {
            line.push_str(&format!(": {reason}"));
        }
        line.push('\n');
        self.out.text(&line)?;
        Ok(())
    }
}

fn summary(out: &mut Output, t: &Tally, dry_run: bool) -> Result<(), CliError> {
    if out.is_json() {
        out.record(&json!({"summary": {
            "dry_run": dry_run,
            "moved": if dry_run { 0 } else { t.moved },
            "would_move": if dry_run { t.moved } else { 0 },
            "skipped": t.skipped,
            "failed": t.failed,
        }}))?;
    } else {
        let verb = if dry_run { "would move" } else { "moved" };
        out.text(&format!(
            "{verb} {}, skipped {}, failed {}\n",
            t.moved, t.skipped, t.failed
        ))?;
    }
    Ok(())
}
