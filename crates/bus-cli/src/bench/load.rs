//! The load generator, straight on amqprs: one connection, one
//! publisher-confirm channel, an exclusive server-named reply queue bound
//! on `commands` under a routing key of its own, used as `reply_to`.
//!
//! Commands are numbered, and their correlation ids are the run's unique
//! id followed by the number, so a result finds its command without a map
//! and a second or late result is recognised (see `tracker.rs`).

use std::time::Instant;

use amqprs::channel::{
    BasicConsumeArguments, BasicPublishArguments, Channel, ConfirmSelectArguments,
    QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::Connection;
use amqprs::{BasicProperties, Deliver};
use bus_core::{
    DeliveryInfo, Envelope, Exchange, MessageKind, OutgoingMessage, Status, new_correlation_id,
};
use bus_service::raw::{BrokerEvent, ChannelEvents, properties_from_amqp, properties_to_amqp};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::sleep_until;

use super::ticker::Schedule;
use super::tracker::Tracker;
use super::{Mode, Plan};
use crate::exit::CliError;

/// Runs the plan on `connection`; the tracker holds the outcome.
pub(crate) async fn run(connection: &Connection, plan: &Plan) -> Result<Tracker, CliError> {
    let amqp = |e| CliError::from_amqp(e, None);
    let channel = connection.open_channel(None).await.map_err(amqp)?;
    let (events_tx, events) = unbounded_channel();
    channel
        .register_callback(ChannelEvents(events_tx))
        .await
        .map_err(amqp)?;
    channel
        .confirm_select(ConfirmSelectArguments::default())
        .await
        .map_err(amqp)?;
    let (queue, _, _) = channel
        .queue_declare(
            QueueDeclareArguments::exclusive_server_named()
                .auto_delete(true)
                .finish(),
        )
        .await
        .map_err(amqp)?
        .ok_or_else(|| CliError::Broker("queue.declare-ok missing".into()))?;
    let run_id = new_correlation_id();
    let reply_to = format!("bus-bench.{run_id}");
    channel
        .queue_bind(QueueBindArguments::new(
            &queue,
            Exchange::Commands.name(),
            &reply_to,
        ))
        .await
        .map_err(amqp)?;
    let (_, replies) = channel
        .basic_consume_rx(
            BasicConsumeArguments::new(&queue, "")
                .auto_ack(true)
                .finish(),
        )
        .await
        .map_err(amqp)?;
    let mut load = Load {
        plan,
        channel,
        prefix: format!("{run_id}:"),
        reply_to,
        tracker: Tracker::new(plan.timeout),
        confirmed: 0,
    };
    load.drive(replies, events).await?;
    let _ = load.channel.close().await;
    Ok(load.tracker)
}

struct Load<'a> {
    plan: &'a Plan,
    channel: Channel,
    /// The run's id and a colon: every correlation id starts with it.
    prefix: String,
    reply_to: String,
    tracker: Tracker,
    /// The highest publish sequence number confirmed (acked or nacked).
    confirmed: u64,
}

impl Load<'_> {
    async fn drive(
        &mut self,
        mut replies: UnboundedReceiver<amqprs::channel::ConsumerMessage>,
        mut events: UnboundedReceiver<BrokerEvent>,
    ) -> Result<(), CliError> {
        let start = Instant::now();
        let stop_at = self.plan.duration.map(|d| start + d);
        let schedule = match self.plan.mode {
            Mode::Rate { per_second } => Some(Schedule::new(start, per_second)),
            Mode::Closed { .. } => None,
        };
        let mut alarms = match schedule {
            Some(s) => Some(
                s.alarms()
                    .map_err(|e| CliError::Internal(format!("cannot start a thread: {e}")))?,
            ),
            None => None,
        };
        loop {
            let now = Instant::now();
            self.tracker.expire(now);
            let sending = self.plan.count.is_none_or(|c| self.tracker.next() < c)
                && stop_at.is_none_or(|t| now < t);
            if sending {
                match (self.plan.mode, schedule) {
                    (Mode::Closed { concurrency }, _) => {
                        while self.tracker.in_flight() < concurrency && self.may_send(stop_at) {
                            self.send(Instant::now()).await?;
                        }
                    }
                    (Mode::Rate { .. }, Some(s)) => {
                        while self.may_send(stop_at) {
                            let due = s.due(self.tracker.next());
                            if due > Instant::now() {
                                break;
                            }
                            self.send(due).await?;
                        }
                    }
                    (Mode::Rate { .. }, None) => {}
                }
            } else if self.tracker.in_flight() == 0 {
                return Ok(());
            } else {
                // Nothing more to send: stop the alarms.
                alarms = None;
            }
            let wake = [self.tracker.next_expiry(), stop_at.filter(|_| sending)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| now + self.plan.timeout);
            tokio::select! {
                biased;
                reply = replies.recv() => {
                    let Some(reply) = reply else {
                        return Err(CliError::Broker("the connection to the broker was lost".into()));
                    };
                    self.reply(reply);
                    while let Ok(reply) = replies.try_recv() {
                        self.reply(reply);
                    }
                }
                event = events.recv() => {
                    if let Some(event) = event {
                        self.event(event)?;
                    }
                }
                Some(()) = async { match alarms.as_mut() { Some(a) => a.recv().await, None => None } } => {
                    if let Some(a) = alarms.as_mut() {
                        while a.try_recv().is_ok() {}
                    }
                }
                () = sleep_until(wake.into()) => {}
            }
        }
    }

    fn may_send(&self, stop_at: Option<Instant>) -> bool {
        self.plan.count.is_none_or(|c| self.tracker.next() < c)
            && stop_at.is_none_or(|t| Instant::now() < t)
    }

    /// Publishes the next command, timed from `start`.
    async fn send(&mut self, start: Instant) -> Result<(), CliError> {
        let correlation_id = format!("{}{}", self.prefix, self.tracker.next());
        let msg = OutgoingMessage::command(
            &self.plan.command,
            self.plan.codec,
            self.plan.body.clone(),
            &correlation_id,
            &self.reply_to,
            &correlation_id,
        )
        .map_err(|source| CliError::RoutingKey {
            what: "command",
            key: self.plan.command.clone(),
            source,
        })?;
        // Every property is ours and short: a failure here is a bug.
        let properties = properties_to_amqp(&msg.properties)
            .map_err(|e| CliError::Internal(format!("command properties: {e}")))?;
        self.tracker.sent(start);
        self.channel
            .basic_publish(
                properties,
                msg.body,
                BasicPublishArguments::new(msg.exchange.name(), &msg.routing_key)
                    .mandatory(msg.mandatory)
                    .finish(),
            )
            .await
            .map_err(|e| CliError::from_amqp(e, None))
    }

    /// The number of the command a correlation id names, if it is ours.
    fn number(&self, correlation_id: Option<&str>) -> Option<u64> {
        correlation_id?.strip_prefix(&self.prefix)?.parse().ok()
    }

    fn reply(&mut self, reply: amqprs::channel::ConsumerMessage) {
        let now = Instant::now();
        let (Some(deliver), Some(props)) = (reply.deliver, reply.basic_properties) else {
            return;
        };
        match self.classify(&deliver, &props) {
            Some((n, success)) => self.tracker.result(n, success, now),
            None => self.tracker.unknown(),
        }
    }

    /// A result's command number and whether it is a success.
    fn classify(&self, deliver: &Deliver, props: &BasicProperties) -> Option<(u64, bool)> {
        let properties = properties_from_amqp(props);
        let info = DeliveryInfo {
            exchange: deliver.exchange(),
            routing_key: deliver.routing_key(),
            delivery_tag: deliver.delivery_tag(),
            redelivered: deliver.redelivered(),
        };
        let (envelope, _) = Envelope::from_delivery(info, &properties).ok()?;
        if envelope.kind != MessageKind::Result {
            return None;
        }
        let n = self.number(envelope.correlation_id.as_deref())?;
        Some((n, envelope.status == Some(Status::Success)))
    }

    fn event(&mut self, event: BrokerEvent) -> Result<(), CliError> {
        match event {
            BrokerEvent::Ack { tag, .. } => self.confirmed = self.confirmed.max(tag),
            BrokerEvent::Nack { tag, multiple } => {
                // Publish sequence numbers start at 1; command numbers at 0.
                let first = if multiple { self.confirmed + 1 } else { tag };
                for seq in first..=tag {
                    self.tracker.nacked(seq - 1);
                }
                self.confirmed = self.confirmed.max(tag);
            }
            BrokerEvent::Returned(_) => {
                // A benchmark of nobody measures nothing: stop at once.
                return Err(CliError::Unroutable(format!(
                    "no queue is bound for {}: is the service running?",
                    self.plan.command
                )));
            }
            BrokerEvent::ChannelClosed { code, text }
            | BrokerEvent::ConnectionClosed { code, text } => {
                return Err(CliError::Broker(format!(
                    "the broker closed: {code} {text}"
                )));
            }
            _ => {}
        }
        Ok(())
    }
}
