//! Publisher confirms: every message the service publishes gets a stable
//! id, is sent on the confirm channel by one sender task per session, and
//! stays in the outbox until the broker confirms it.
//!
//! - The broker numbers publishes on a channel from 1. Only the sender task
//!   publishes on the confirm channel, so its counter is the broker's.
//! - A nacked message is sent again after the retry delay, under a new
//!   sequence number but the same id, so whatever waits for it keeps waiting.
//! - When a session ends, messages published for one of its deliveries are
//!   dropped: the broker redelivers the delivery and its handler publishes
//!   them again. Every other message is sent again on the next session.
//!
//! See `docs/protocol.md`, "Acknowledgement and dead letters".

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use amqprs::BasicProperties;
use amqprs::channel::{BasicPublishArguments, Channel};
use bus_core::OutgoingMessage;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::PublishError;
use crate::observe::{Observer, TraceEvent};
use crate::properties::to_amqp;

/// The outbox's own number for a message, stable across republishes.
pub(crate) type PublishId = u64;

/// How many publish requests may wait for the sender task before
/// publishers are slowed down.
const QUEUE_CAPACITY: usize = 4096;

/// A message converted for amqprs once, when published, so that a bad
/// header is the publisher's error and a republish costs no conversion.
struct Prepared {
    exchange: &'static str,
    routing_key: String,
    mandatory: bool,
    properties: BasicProperties,
    body: Vec<u8>,
}

/// Who a message was published for; decides what happens across sessions.
pub(crate) enum Owner {
    /// Published while handling a delivery of session `generation`.
    Delivery { generation: u64 },
    /// Published by anything else (a Publisher, a timer, a hook): kept
    /// until confirmed, across sessions. The waiter learns the outcome.
    Free {
        waiter: Option<oneshot::Sender<Result<(), PublishError>>>,
    },
}

enum State {
    /// Waiting in the sender queue.
    Queued,
    /// Sent on the current channel, waiting for its confirm.
    InFlight,
    /// Sent on a channel that died before confirming it: to be sent again
    /// first thing on the next channel.
    Resend,
    /// Nacked; a timer will queue it again.
    AwaitingRetry,
}

struct Pending {
    message: Arc<Prepared>,
    owner: Owner,
    state: State,
}

#[derive(Default)]
struct Book {
    next_id: PublishId,
    /// The session whose channel is attached; 0 before the first one.
    generation: u64,
    attached: bool,
    /// The service has stopped for good: nothing will send or confirm
    /// what is published now.
    closed: bool,
    pending: HashMap<PublishId, Pending>,
    /// Sequence number on the current channel -> id and send time.
    in_flight: BTreeMap<u64, (PublishId, Instant)>,
}

/// What a publisher confirm meant.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Confirmation {
    /// Ids the broker took responsibility for.
    pub(crate) confirmed: Vec<PublishId>,
    /// Ids the broker refused; they will be sent again.
    pub(crate) nacked: Vec<PublishId>,
}

/// A converted message with its room in the queue, not yet recorded.
pub(crate) struct Slot<'a> {
    outbox: &'a Outbox,
    permit: mpsc::Permit<'a, PublishId>,
    prepared: Arc<Prepared>,
}

impl Slot<'_> {
    /// Records the message for `owner` and queues it: no await, so it
    /// cannot be interrupted half done.
    pub(crate) fn send(self, owner: Owner) -> Result<PublishId, PublishError> {
        let mut book = self.outbox.book();
        if book.closed {
            return Err(PublishError::Stopped);
        }
        if let Owner::Delivery { generation } = owner {
            if !book.attached || generation != book.generation {
                return Err(PublishError::DeliveryLost);
            }
        }
        book.next_id += 1;
        let id = book.next_id;
        book.pending.insert(
            id,
            Pending {
                message: self.prepared,
                owner,
                state: State::Queued,
            },
        );
        drop(book);
        self.permit.send(id);
        Ok(id)
    }
}

/// The store of unconfirmed messages, shared by every publisher of a service.
pub(crate) struct Outbox {
    book: Mutex<Book>,
    queue_tx: mpsc::Sender<PublishId>,
    queue_rx: tokio::sync::Mutex<mpsc::Receiver<PublishId>>,
    retry_delay: Duration,
    observer: Observer,
}

impl Outbox {
    pub(crate) fn new(retry_delay: Duration, observer: Observer) -> Arc<Outbox> {
        let (queue_tx, queue_rx) = mpsc::channel(QUEUE_CAPACITY);
        Arc::new(Outbox {
            book: Mutex::new(Book::default()),
            queue_tx,
            queue_rx: tokio::sync::Mutex::new(queue_rx),
            retry_delay,
            observer,
        })
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // A panic while holding this lock cannot leave the book half
        // updated in a way later code relies on, so poisoning is ignored.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a message for publication and returns its id. Waits only when
    /// the queue is full.
    pub(crate) async fn publish(
        &self,
        message: OutgoingMessage,
        owner: Owner,
    ) -> Result<PublishId, PublishError> {
        self.reserve(message).await?.send(owner)
    }

    /// Converts a message and waits for room in the queue. Nothing is
    /// recorded until [`Slot::send`], so a caller that stops waiting (a
    /// timeout, a `select!`) leaves nothing behind: a message in the book
    /// but not in the queue would never be sent nor confirmed.
    pub(crate) async fn reserve(&self, message: OutgoingMessage) -> Result<Slot<'_>, PublishError> {
        let prepared = Arc::new(Prepared {
            exchange: message.exchange.name(),
            properties: to_amqp(&message.properties)?,
            routing_key: message.routing_key,
            mandatory: message.mandatory,
            body: message.body,
        });
        let permit = self
            .queue_tx
            .reserve()
            .await
            .map_err(|_| PublishError::Stopped)?;
        Ok(Slot {
            outbox: self,
            permit,
            prepared,
        })
    }

    /// Whether `id` still waits for its confirm.
    pub(crate) fn is_pending(&self, id: PublishId) -> bool {
        self.book().pending.contains_key(&id)
    }

    /// Number of messages not yet confirmed.
    pub(crate) fn pending_count(&self) -> usize {
        self.book().pending.len()
    }

    /// How long the oldest message in flight has waited for its confirm.
    pub(crate) fn oldest_in_flight(&self) -> Option<Duration> {
        self.book()
            .in_flight
            .first_key_value()
            .map(|(_, (_, sent))| sent.elapsed())
    }

    /// Starts a session on a fresh confirm channel: drops the messages of
    /// the previous session's deliveries, sends the others again, and runs
    /// the sender task until `stop` is cancelled.
    pub(crate) fn attach(
        self: &Arc<Self>,
        channel: Channel,
        generation: u64,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let resend = self.begin(generation);
        let outbox = Arc::clone(self);
        tokio::spawn(async move { outbox.run_sender(channel, resend, stop).await })
    }

    /// The book's side of [`attach`](Self::attach): what to send first.
    fn begin(&self, generation: u64) -> VecDeque<PublishId> {
        let mut book = self.book();
        book.generation = generation;
        book.attached = true;
        book.in_flight.clear();
        for p in book.pending.values_mut() {
            if matches!(p.state, State::InFlight) {
                p.state = State::Resend;
            }
        }
        let stale: Vec<PublishId> = book
            .pending
            .iter()
            .filter(
                |(_, p)| matches!(p.owner, Owner::Delivery { generation: g } if g != generation),
            )
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            book.pending.remove(&id);
        }
        let mut resend: Vec<PublishId> = book
            .pending
            .iter()
            .filter(|(_, p)| matches!(p.state, State::Resend))
            .map(|(id, _)| *id)
            .collect();
        resend.sort_unstable();
        resend.into()
    }

    /// Marks the end of a session: nothing is in flight any more.
    pub(crate) fn detach(&self) {
        let mut book = self.book();
        book.attached = false;
        book.in_flight.clear();
        for p in book.pending.values_mut() {
            if matches!(p.state, State::InFlight) {
                // Sent on a dead channel: its fate is unknown, so it goes
                // again on the next one (at-least-once).
                p.state = State::Resend;
            }
        }
    }

    async fn run_sender(
        self: Arc<Self>,
        channel: Channel,
        mut resend: VecDeque<PublishId>,
        stop: CancellationToken,
    ) {
        let mut queue = self.queue_rx.lock().await;
        let mut next_seq: u64 = 1;
        loop {
            let id = match resend.pop_front() {
                Some(id) => id,
                None => tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    id = queue.recv() => match id {
                        Some(id) => id,
                        None => return,
                    },
                },
            };
            let Some(message) = self.take_for_sending(id, next_seq) else {
                continue;
            };
            let seq = next_seq;
            next_seq += 1;
            let args = BasicPublishArguments::new(message.exchange, &message.routing_key)
                .mandatory(message.mandatory)
                .finish();
            let publish =
                channel.basic_publish(message.properties.clone(), message.body.clone(), args);
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                result = publish => {
                    if let Err(error) = result {
                        // The channel is gone; the session notices and ends.
                        tracing::debug!(%error, "publish failed on a closing channel");
                        return;
                    }
                }
            }
            self.observer.emit(TraceEvent::Published { id, seq });
        }
    }

    /// Records that `id` goes out as `seq`, or says to skip it.
    fn take_for_sending(&self, id: PublishId, seq: u64) -> Option<Arc<Prepared>> {
        let mut book = self.book();
        let generation = book.generation;
        let pending = book.pending.get_mut(&id)?;
        if let Owner::Delivery { generation: g } = pending.owner {
            if g != generation {
                book.pending.remove(&id);
                return None;
            }
        }
        if !matches!(pending.state, State::Queued | State::Resend) {
            return None;
        }
        pending.state = State::InFlight;
        let message = Arc::clone(&pending.message);
        book.in_flight.insert(seq, (id, Instant::now()));
        Some(message)
    }

    /// Applies a publisher confirm from the broker.
    pub(crate) fn confirm(self: &Arc<Self>, ack: bool, tag: u64, multiple: bool) -> Confirmation {
        let mut outcome = Confirmation::default();
        let mut book = self.book();
        let seqs: Vec<u64> = if multiple {
            book.in_flight.range(..=tag).map(|(s, _)| *s).collect()
        } else {
            vec![tag]
        };
        for seq in seqs {
            let Some((id, _)) = book.in_flight.remove(&seq) else {
                continue;
            };
            if ack {
                if let Some(pending) = book.pending.remove(&id) {
                    if let Owner::Free {
                        waiter: Some(waiter),
                    } = pending.owner
                    {
                        let _ = waiter.send(Ok(()));
                    }
                }
                self.observer.emit(TraceEvent::Confirmed { id });
                outcome.confirmed.push(id);
            } else if let Some(pending) = book.pending.get_mut(&id) {
                pending.state = State::AwaitingRetry;
                self.observer.emit(TraceEvent::BrokerNacked { id });
                outcome.nacked.push(id);
            }
        }
        drop(book);
        for id in &outcome.nacked {
            self.schedule_retry(*id);
        }
        outcome
    }

    fn schedule_retry(self: &Arc<Self>, id: PublishId) {
        let outbox = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(outbox.retry_delay).await;
            let requeue = match outbox.book().pending.get_mut(&id) {
                Some(p) if matches!(p.state, State::AwaitingRetry) => {
                    p.state = State::Queued;
                    true
                }
                _ => false,
            };
            if requeue {
                tracing::info!(id, "sending a nacked message again");
                let _ = outbox.queue_tx.send(id).await;
            }
        });
    }

    /// Fails every waiter, and every later publish: the service is
    /// stopping for good.
    pub(crate) fn close(&self) {
        let mut book = self.book();
        book.closed = true;
        for (_, pending) in book.pending.drain() {
            if let Owner::Free {
                waiter: Some(waiter),
            } = pending.owner
            {
                let _ = waiter.send(Err(PublishError::Stopped));
            }
        }
        book.in_flight.clear();
        drop(book);
        // No sender task will make room in the queue again: publishes
        // waiting for room must fail now rather than wait forever. Called
        // once the last session's sender has ended, so the lock is free.
        if let Ok(mut queue) = self.queue_rx.try_lock() {
            queue.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus_core::Codec;

    fn event() -> OutgoingMessage {
        OutgoingMessage::event("test.Happened", Codec::Json, b"{}".to_vec(), "conv").unwrap()
    }

    fn free() -> Owner {
        Owner::Free { waiter: None }
    }

    /// A full queue (a stalled broker) makes `publish` wait; a caller that
    /// gives up (a timeout, a `select!`) drops the future.
    async fn full_outbox() -> Arc<Outbox> {
        let outbox = Outbox::new(Duration::from_secs(15), Observer::default());
        for _ in 0..QUEUE_CAPACITY {
            outbox.publish(event(), free()).await.unwrap();
        }
        outbox
    }

    #[tokio::test]
    async fn a_publish_dropped_while_waiting_for_room_leaves_nothing_behind() {
        let outbox = full_outbox().await;
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), outbox.publish(event(), free())).await;
        assert!(gave_up.is_err(), "the queue is full");
        // A message left in the book but not in the queue would never be
        // sent nor confirmed, and would hold every graceful stop until its
        // timeout.
        assert_eq!(outbox.pending_count(), QUEUE_CAPACITY);
    }

    #[tokio::test]
    async fn a_publish_racing_its_handlers_return_is_awaited_or_kept() {
        use crate::context::{Context, DeliveryScope, shared_for_tests};
        let outbox = full_outbox().await;
        outbox.begin(1);
        let scope = Arc::new(DeliveryScope {
            session: 1,
            kind: bus_core::MessageKind::Event,
            conversation_id: "conv".to_owned(),
            correlation_id: None,
            reply_to: None,
            status: None,
            meta: Arc::default(),
            outputs: Mutex::new(Some(Vec::new())),
        });
        let ctx = Context {
            shared: shared_for_tests(Arc::clone(&outbox)),
            delivery: Some(Arc::clone(&scope)),
        };
        // A task the handler spawned publishes; the queue is full.
        let publishing = tokio::spawn(async move { ctx.publish(event()).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!publishing.is_finished(), "the queue is full");
        // Meanwhile the handler returns: its ack waits for these outputs.
        let awaited = scope.take_outputs();
        // Room comes back and the publish completes.
        outbox.queue_rx.lock().await.recv().await.unwrap();
        publishing.await.unwrap().unwrap();
        // The connection is lost before the confirm; a new session starts.
        outbox.detach();
        outbox.begin(2);
        let kept = outbox.pending_count() == QUEUE_CAPACITY + 1;
        assert!(
            !awaited.is_empty() || kept,
            "the delivery's ack did not wait for the message, and the \
             reconnection dropped it: lost"
        );
    }

    #[tokio::test]
    async fn close_fails_a_publish_waiting_for_room() {
        let outbox = full_outbox().await;
        let waiting = tokio::spawn({
            let outbox = Arc::clone(&outbox);
            async move { outbox.publish(event(), free()).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the queue is full");
        // The service stopped: no sender task will ever make room.
        outbox.close();
        let outcome = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("a publish waiting for room hangs after close")
            .unwrap();
        assert!(matches!(outcome, Err(PublishError::Stopped)), "{outcome:?}");
    }
}
