//! One session: the life of a service on one connection.
//!
//! topology → configuration phase → consume → dispatch → settle, in a
//! single task that owns the ledger. Handlers run as futures of this task
//! (no spawn, no hand-over between tasks per delivery) and publish through
//! the outbox; broker callbacks arrive here as events.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, BasicNackArguments, BasicQosArguments, Channel, ConfirmSelectArguments,
};
use amqprs::connection::Connection;
use bus_core::LogLevel;
use futures_util::FutureExt as _;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::amqp::{BrokerEvent, ChannelEvents, ConnectionEvents};
use crate::consumers::{Consumers, Polled};
use crate::context::{Control, DeliveryScope};
use crate::dispatch::{self, HandlerDone};
use crate::health::ServiceState;
use crate::ledger::{Ledger, Settlement};
use crate::observe::TraceEvent;
use crate::runtime::{Runtime, panic_text};
use crate::service::Service;
use crate::topology::{self, Queues};

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum EndCause {
    /// Graceful shutdown completed.
    Stopped,
    /// Setting up the channels, topology or consumers failed.
    Setup(String),
    /// The TCP connection failed or heartbeats stopped.
    ConnectionLost,
    /// The broker closed the connection.
    ConnectionClosed { code: u16, text: String },
    /// The broker closed a channel.
    ChannelClosed { code: u16, text: String },
    /// The broker cancelled a consumer (its queue was deleted, ...).
    ConsumerCancelled { consumer_tag: String },
    /// The broker stopped taking our traffic: publisher confirms stopped
    /// arriving, or acks could not be sent. It is blocked or stalled.
    Stalled {
        /// What stopped.
        what: &'static str,
        waited: Duration,
    },
}

impl std::fmt::Display for EndCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndCause::Stopped => write!(f, "stopped"),
            EndCause::Setup(e) => write!(f, "setup failed: {e}"),
            EndCause::ConnectionLost => {
                write!(f, "connection lost (network error or heartbeat timeout)")
            }
            EndCause::ConnectionClosed { code, text } => {
                write!(f, "connection closed by the broker: {code} {text}")
            }
            EndCause::ChannelClosed { code, text } => {
                write!(f, "channel closed by the broker: {code} {text}")
            }
            EndCause::ConsumerCancelled { consumer_tag } => {
                write!(f, "consumer {consumer_tag} cancelled by the broker")
            }
            EndCause::Stalled { what, waited } => write!(
                f,
                "{what} for {:.1} s: broker blocked or stalled",
                waited.as_secs_f64()
            ),
        }
    }
}

/// How a session ended.
pub(crate) struct SessionEnd {
    pub(crate) cause: EndCause,
    /// Whether the session got as far as consuming.
    pub(crate) consumed: bool,
}

/// A running handler: its delivery, and what it returned or how it panicked.
type Handler =
    Pin<Box<dyn Future<Output = (Arc<DeliveryScope>, std::thread::Result<HandlerDone>)> + Send>>;

struct Session<'a, S> {
    rt: &'a Runtime<S>,
    number: u64,
    connection: Connection,
    main: Channel,
    queues: Queues,
    consumers: Consumers,
    ledger: Ledger,
    handlers: FuturesUnordered<Handler>,
    configured: bool,
    consumed: bool,
    stop_sender: CancellationToken,
    stopping: Option<tokio::time::Instant>,
}

/// Runs one session on `connection` until it ends.
pub(crate) async fn run<S: Service>(
    rt: &Runtime<S>,
    connection: Connection,
    number: u64,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> SessionEnd {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let setup = async {
        connection
            .register_callback(ConnectionEvents(events_tx.clone()))
            .await?;
        let main = connection.open_channel(None).await?;
        main.register_callback(ChannelEvents(events_tx.clone()))
            .await?;
        let logs = connection.open_channel(None).await?;
        logs.register_callback(ChannelEvents(events_tx.clone()))
            .await?;
        let queues = topology::declare(&main, &rt.config, &rt.keys).await?;
        main.basic_qos(BasicQosArguments::new(0, rt.config.prefetch, false))
            .await?;
        main.confirm_select(ConfirmSelectArguments::default())
            .await?;
        Ok::<_, amqprs::error::Error>((main, logs, queues))
    };
    // A broker that stops answering (blocked by an alarm, paused) must not
    // hold the session here forever, nor delay a shutdown.
    let shutdown = rt.shared.shutdown.clone();
    let setup = tokio::select! {
        setup = tokio::time::timeout(rt.config.connection_timeout, setup) => setup,
        () = shutdown.cancelled() => {
            close_quietly(connection);
            return SessionEnd { cause: EndCause::Stopped, consumed: false };
        }
    };
    let (main, logs, queues) = match setup {
        Ok(Ok(parts)) => parts,
        failed => {
            close_quietly(connection);
            let error = match failed {
                Ok(Err(error)) => error.to_string(),
                _ => timed_out(rt.config.connection_timeout),
            };
            return SessionEnd {
                cause: EndCause::Setup(error),
                consumed: false,
            };
        }
    };
    let stop_sender = CancellationToken::new();
    let sender = rt
        .shared
        .outbox
        .attach(main.clone(), number, stop_sender.clone());
    rt.log_channel.send_replace(Some(logs.clone()));
    rt.shared
        .current_session
        .store(number, std::sync::atomic::Ordering::Release);
    rt.config
        .observer
        .emit(TraceEvent::SessionStarted { session: number });

    let mut session = Session {
        rt,
        number,
        connection: connection.clone(),
        main,
        queues,
        consumers: Consumers::default(),
        ledger: Ledger::default(),
        handlers: FuturesUnordered::new(),
        configured: false,
        consumed: false,
        stop_sender,
        stopping: None,
    };
    let cause = match session.start_consuming().await {
        Ok(()) => session.run(&mut events, control).await,
        Err(cause) => cause,
    };
    let consumed = session.consumed;
    if matches!(cause, EndCause::Stopped) {
        // Let "Shutting down…" and the last logs reach the bus.
        let _ = tokio::time::timeout(Duration::from_secs(1), rt.shared.logger.flush()).await;
    }
    session.stop_sender.cancel();
    // Dropping a handler's future cancels it, as aborting its task did.
    session.handlers.clear();
    rt.shared
        .current_session
        .store(0, std::sync::atomic::Ordering::Release);
    rt.shared.outbox.detach();
    rt.log_channel.send_replace(None);
    let _ = sender.await;
    if matches!(cause, EndCause::Stopped) {
        let _ = tokio::time::timeout(Duration::from_secs(2), session.main.clone().close()).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), logs.close()).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), connection.close()).await;
    } else {
        close_quietly(connection);
    }
    SessionEnd { cause, consumed }
}

fn timed_out(timeout: Duration) -> String {
    format!(
        "no answer from the broker within {:.1} s",
        timeout.as_secs_f64()
    )
}

/// Closes a connection that may be dead or blocked without waiting for it.
///
/// On a blocked connection the close handshake cannot complete: the
/// broker reads the `connection.close` only once its alarm clears, then
/// closes the connection and requeues what it had delivered on it.
fn close_quietly(connection: Connection) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), connection.close()).await;
    });
}

impl<S: Service> Session<'_, S> {
    /// The configuration queue first when there is one; the business
    /// queues right away otherwise.
    async fn start_consuming(&mut self) -> Result<(), EndCause> {
        if let Some(queue) = self.queues.configurations.clone() {
            self.subscribe(&queue).await?;
            self.consumed = true;
            self.rt.shared.health.set_state(ServiceState::Configuring);
            let (service, ctx) = (Arc::clone(&self.rt.service), self.rt.service_context());
            self.rt.spawn_hook("on_unconfigured", async move {
                service.on_unconfigured(ctx).await
            });
            Ok(())
        } else {
            self.start_business().await
        }
    }

    /// `basic.consume` waits for the broker's answer: bounded, since a
    /// blocked connection never gets one.
    async fn subscribe(&mut self, queue: &str) -> Result<(), EndCause> {
        let timeout = self.rt.config.connection_timeout;
        match tokio::time::timeout(timeout, self.consumers.subscribe(&self.main, queue)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(EndCause::Setup(error.to_string())),
            Err(_) => Err(EndCause::Setup(timed_out(timeout))),
        }
    }

    async fn start_business(&mut self) -> Result<(), EndCause> {
        self.configured = true;
        for queue in [self.queues.events.clone(), self.queues.commands.clone()]
            .into_iter()
            .flatten()
        {
            self.subscribe(&queue).await?;
        }
        self.consumed = true;
        self.rt.shared.health.set_state(ServiceState::Ready);
        let (service, ctx) = (Arc::clone(&self.rt.service), self.rt.service_context());
        self.rt
            .spawn_hook("on_ready", async move { service.on_ready(ctx).await });
        Ok(())
    }

    async fn run(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<BrokerEvent>,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> EndCause {
        let connection = self.connection.clone();
        let io_failure = connection.listen_network_io_failure();
        tokio::pin!(io_failure);
        let timeout = self.rt.config.confirm_timeout;
        let mut stall_check = tokio::time::interval((timeout / 4).min(Duration::from_secs(1)));
        let shutdown = self.rt.shared.shutdown.clone();
        let concurrency = self.rt.config.concurrency.max(1);
        loop {
            if self.stopping.is_some() && self.drained() {
                return EndCause::Stopped;
            }
            let stop_deadline = self.stopping.unwrap_or_else(tokio::time::Instant::now);
            let outcome: Result<(), EndCause> = tokio::select! {
                biased;
                Some(event) = events.recv() => self.on_broker_event(event),
                Some(request) = control.recv() => {
                    self.on_control(request);
                    Ok(())
                }
                Some((scope, done)) = self.handlers.next(), if !self.handlers.is_empty() => {
                    self.on_handler_done(scope, done).await
                }
                polled = self.consumers.next(), if self.stopping.is_none() && self.handlers.len() < concurrency => {
                    self.on_polled(polled)
                }
                _ = &mut io_failure => Err(EndCause::ConnectionLost),
                _ = stall_check.tick() => match self.rt.shared.outbox.oldest_in_flight() {
                    Some(waited) if waited > timeout => Err(EndCause::Stalled {
                        what: "no publisher confirm",
                        waited,
                    }),
                    // amqprs announces an I/O failure only to listeners
                    // already subscribed: a connection that died before the
                    // first poll of `io_failure` is caught here.
                    _ if !connection.is_open() => Err(EndCause::ConnectionLost),
                    _ => Ok(()),
                },
                () = shutdown.cancelled(), if self.stopping.is_none() => {
                    self.begin_stop().await;
                    Ok(())
                }
                () = tokio::time::sleep_until(stop_deadline), if self.stopping.is_some() => {
                    tracing::warn!("stop timeout reached; unfinished work goes back to the queues");
                    return EndCause::Stopped;
                }
            };
            if let Err(cause) = outcome {
                if self.stopping.is_some() && !matches!(cause, EndCause::Stalled { .. }) {
                    // The connection went away while stopping: nothing more
                    // can be acked, and the broker requeues the rest.
                    return EndCause::Stopped;
                }
                return cause;
            }
            if let Err(cause) = self.flush_settlements().await {
                // While stopping, a lost or blocked connection only means
                // the rest goes back to the queues: the stop is complete.
                return if self.stopping.is_some() {
                    EndCause::Stopped
                } else {
                    cause
                };
            }
        }
    }

    /// Everything started is settled: handlers returned, their acks sent,
    /// every publish confirmed.
    fn drained(&self) -> bool {
        self.handlers.is_empty()
            && self.ledger.busy() == 0
            && self.rt.shared.outbox.pending_count() == 0
    }

    async fn begin_stop(&mut self) {
        let deadline = tokio::time::Instant::now() + self.rt.config.stop_timeout;
        self.stopping = Some(deadline);
        self.rt.shared.health.set_state(ServiceState::Stopping);
        // Timers end with the service; one that keeps publishing would
        // otherwise hold the stop until its timeout.
        self.rt.shared.timers.cancel_all();
        self.rt
            .shared
            .logger
            .simple(LogLevel::Warning, "Shutting down…", "", "");
        // `basic.cancel` waits for the broker's answer, which a blocked or
        // dead connection never gives. The session stops polling the
        // consumers anyway, and closing the channel cancels them.
        if tokio::time::timeout_at(deadline, self.consumers.cancel_all(&self.main))
            .await
            .is_err()
        {
            tracing::warn!("the broker did not confirm the consumer cancels");
        }
    }

    fn on_broker_event(&mut self, event: BrokerEvent) -> Result<(), EndCause> {
        match event {
            BrokerEvent::Ack { tag, multiple } | BrokerEvent::Nack { tag, multiple } => {
                let ack = matches!(event, BrokerEvent::Ack { .. });
                let confirmation = self.rt.shared.outbox.confirm(ack, tag, multiple);
                self.ledger.confirmed(&confirmation.confirmed);
                Ok(())
            }
            BrokerEvent::Returned(returned) => {
                let returned = *returned;
                tracing::debug!(routing_key = %returned.routing_key, "message returned by the broker");
                let (service, ctx) = (Arc::clone(&self.rt.service), self.rt.service_context());
                self.rt.spawn_hook("handle_returned", async move {
                    service.handle_returned(ctx, returned).await
                });
                Ok(())
            }
            BrokerEvent::ConsumerCancelled { consumer_tag } => {
                if self.stopping.is_some() {
                    return Ok(());
                }
                // Not ready from this moment: a consumer is missing.
                self.rt.shared.health.set_state(ServiceState::Reconnecting);
                Err(EndCause::ConsumerCancelled { consumer_tag })
            }
            BrokerEvent::ChannelClosed { code, text } => {
                Err(EndCause::ChannelClosed { code, text })
            }
            BrokerEvent::ConnectionClosed { code, text } => {
                Err(EndCause::ConnectionClosed { code, text })
            }
        }
    }

    fn on_control(&mut self, request: Control) {
        match request {
            Control::Ack {
                session,
                tag,
                multiple,
            } if session == self.number => self.ledger.manual_ack(tag, multiple),
            Control::Nack {
                session,
                tag,
                multiple,
                requeue,
            } if session == self.number => {
                if !requeue {
                    self.rt.shared.health.count_dead_lettered();
                }
                self.ledger.manual_nack(tag, multiple, requeue)
            }
            Control::AckEach { session, tags } if session == self.number => {
                for tag in tags {
                    self.ledger.manual_ack(tag, false);
                }
            }
            // For a delivery of an earlier connection: the broker has
            // already put it back in its queue.
            _ => {}
        }
    }

    fn on_polled(&mut self, polled: Polled) -> Result<(), EndCause> {
        let delivery = match polled {
            Polled::Delivery(delivery) => delivery,
            Polled::Ended { consumer_tag } => {
                self.rt.shared.health.set_state(ServiceState::Reconnecting);
                // Every consumer stream ends with its connection: report
                // the real cause.
                if !self.connection.is_open() {
                    return Err(EndCause::ConnectionLost);
                }
                return Err(EndCause::ConsumerCancelled { consumer_tag });
            }
        };
        match dispatch::prepare(*delivery) {
            None => Ok(()),
            Some(Err(rejection)) => {
                dispatch::log_rejection(&self.rt.shared, &rejection);
                self.ledger.rejected(rejection.tag, false);
                Ok(())
            }
            Some(Ok(message)) => {
                self.ledger.received(message.delivery_tag());
                let (scope, task) = dispatch::handler_task(
                    Arc::clone(&self.rt.service),
                    Arc::clone(&self.rt.shared),
                    self.number,
                    message,
                );
                // A panic is caught here, as a task's would be, and settled
                // like a failure: the service goes on.
                self.handlers.push(Box::pin(async move {
                    let done = AssertUnwindSafe(task).catch_unwind().await;
                    (scope, done)
                }));
                Ok(())
            }
        }
    }

    async fn on_handler_done(
        &mut self,
        scope: Arc<DeliveryScope>,
        done: std::thread::Result<HandlerDone>,
    ) -> Result<(), EndCause> {
        let outputs = scope.take_outputs();
        let unconfirmed = self.observe_finish(&scope, outputs);
        let (finished, configured) = match done {
            Ok(done) => {
                let finished = dispatch::settle(&self.rt.shared, &scope, done.result, unconfirmed);
                (finished, done.configured)
            }
            // A panicked handler's delivery is nacked: its outputs are
            // traced but nothing waits for them.
            Err(panic) => {
                let text = panic_text(&*panic);
                (
                    dispatch::settle_panic(&self.rt.shared, &scope, &text),
                    false,
                )
            }
        };
        self.ledger.finished(scope.meta.delivery_tag, finished);
        if configured && !self.configured && self.stopping.is_none() {
            self.start_business().await?;
        }
        Ok(())
    }

    /// Records the handler's outputs in the trace and keeps those the
    /// broker has not confirmed yet.
    fn observe_finish(&self, scope: &DeliveryScope, outputs: Vec<u64>) -> Vec<u64> {
        self.rt.config.observer.emit(TraceEvent::HandlerFinished {
            session: self.number,
            delivery_tag: scope.meta.delivery_tag,
            outputs: outputs.clone(),
        });
        let outbox = &self.rt.shared.outbox;
        outputs
            .into_iter()
            .filter(|id| outbox.is_pending(*id))
            .collect()
    }

    async fn flush_settlements(&mut self) -> Result<(), EndCause> {
        // An ack only waits for room in amqprs's outgoing queue; that room
        // never comes back on a connection whose socket the broker stopped
        // reading, so the wait is bounded, by the stop deadline too.
        let timeout = self.rt.config.connection_timeout;
        for settlement in self.ledger.take_settlements() {
            let mut deadline = tokio::time::Instant::now() + timeout;
            if let Some(stop) = self.stopping {
                deadline = deadline.min(stop);
            }
            let send = async {
                match settlement {
                    Settlement::Ack { tag, multiple } => {
                        self.main
                            .basic_ack(BasicAckArguments::new(tag, multiple))
                            .await
                    }
                    Settlement::Nack { tag, requeue } => {
                        self.main
                            .basic_nack(BasicNackArguments::new(tag, false, requeue))
                            .await
                    }
                }
            };
            let Ok(sent) = tokio::time::timeout_at(deadline, send).await else {
                return Err(EndCause::Stalled {
                    what: "cannot send acknowledgements",
                    waited: timeout,
                });
            };
            if sent.is_err() {
                return Err(EndCause::ConnectionLost);
            }
            self.rt.config.observer.emit(match settlement {
                Settlement::Ack { tag, multiple } => TraceEvent::Acked {
                    session: self.number,
                    delivery_tag: tag,
                    multiple,
                },
                Settlement::Nack { tag, requeue } => TraceEvent::Nacked {
                    session: self.number,
                    delivery_tag: tag,
                    requeue,
                },
            });
        }
        Ok(())
    }
}
