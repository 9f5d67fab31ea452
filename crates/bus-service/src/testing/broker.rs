//! The in-memory broker's state and its RabbitMQ semantics: exchanges,
//! bindings, queues, consumers with prefetch, acks, requeues with the
//! redelivered flag, dead letters, confirms and returns.
//!
//! Every operation runs under one lock and writes the frames it causes to
//! the connections' outgoing queues before releasing it, so the order a
//! client sees (a `basic.return` before the confirm of its publish, a
//! `consume-ok` before the first delivery) is the order RabbitMQ gives.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use amqprs::{BasicProperties, FieldTable, FieldValue};
use bus_core::TopicPattern;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::frame::{Arg, Consume, FrameWriter, QueueDeclare};
use super::record::{DeadLetter, Published};

pub(crate) type ConnId = u64;

/// A refusal, sent as `channel.close` (or `connection.close` when
/// `connection` is set) with these AMQP reply code and text.
#[derive(Debug)]
pub(crate) struct AmqpError {
    pub(crate) code: u16,
    pub(crate) text: String,
    pub(crate) connection: bool,
}

fn refuse(code: u16, text: String) -> AmqpError {
    AmqpError {
        code,
        text,
        connection: false,
    }
}

pub(crate) const NOT_FOUND: u16 = 404;
const RESOURCE_LOCKED: u16 = 405;
const PRECONDITION_FAILED: u16 = 406;

/// A message as stored in a queue.
#[derive(Clone)]
struct Message {
    exchange: String,
    routing_key: String,
    properties: Arc<BasicProperties>,
    body: Arc<[u8]>,
    redelivered: bool,
    /// Its place in the queue, kept when it is requeued (set by `enqueue`).
    seq: u64,
}

struct Queue {
    durable: bool,
    exclusive_owner: Option<ConnId>,
    auto_delete: bool,
    arguments: FieldTable,
    ready: VecDeque<Message>,
    /// Consumers in round-robin order: connection, channel, tag.
    consumers: Vec<(ConnId, u16, String)>,
    cursor: usize,
    /// The last `seq` given before it was declared: a message with a seq
    /// up to this one came from a deleted queue of the same name.
    since: u64,
}

struct Consumer {
    queue: String,
    no_ack: bool,
    prefetch: u16,
    unacked: u32,
}

struct Unacked {
    queue: String,
    consumer: Option<String>,
    message: Message,
}

#[derive(Default)]
struct Channel {
    confirm: bool,
    published: u64,
    next_tag: u64,
    prefetch: u16,
    unacked: BTreeMap<u64, Unacked>,
    consumers: HashMap<String, Consumer>,
}

struct Connection {
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    abort: CancellationToken,
    frame_max: u32,
    channels: HashMap<u16, Channel>,
}

struct Binding {
    exchange: String,
    queue: String,
    key: String,
    /// `None` for the empty key, which bus-core's pattern refuses but
    /// RabbitMQ accepts (fanout bindings usually have it).
    pattern: Option<TopicPattern>,
}

impl Binding {
    /// Whether this is the binding of `queue` to `exchange` with `key`.
    fn joins(&self, exchange: &str, queue: &str, key: &str) -> bool {
        self.exchange == exchange && self.queue == queue && self.key == key
    }
}

impl Binding {
    /// Whether a message published with `routing_key` to this binding's
    /// exchange, of type `kind`, goes through it.
    fn routes(&self, kind: &str, routing_key: &str) -> bool {
        match kind {
            "fanout" => true,
            "direct" => self.key == routing_key,
            // The empty key has no words: it matches the empty key only.
            _ => self
                .pattern
                .as_ref()
                .map_or(routing_key.is_empty(), |p| p.matches(routing_key)),
        }
    }
}

#[derive(Default)]
struct State {
    exchanges: HashMap<String, String>,
    queues: HashMap<String, Queue>,
    bindings: Vec<Binding>,
    connections: HashMap<ConnId, Connection>,
    next_id: u64,
    next_seq: u64,
    published: Vec<Published>,
    dead_letters: Vec<DeadLetter>,
    dead_letter_policies: HashMap<String, String>,
    nack_next: u32,
}

/// The broker: shared by the listener, every connection task and the
/// harness.
#[derive(Default)]
pub(crate) struct Broker {
    state: Mutex<State>,
    /// Woken after every change, for `wait_idle` and `wait_for`.
    pub(crate) changed: Notify,
}

impl Broker {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug in this module; the state
        // is still the best information there is, so keep going with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn done<T>(&self, result: T) -> T {
        self.changed.notify_waiters();
        result
    }

    pub(crate) fn connect(
        &self,
        outgoing: mpsc::UnboundedSender<Vec<u8>>,
        abort: CancellationToken,
    ) -> ConnId {
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        let connection = Connection {
            outgoing,
            abort,
            frame_max: 131_072,
            channels: HashMap::new(),
        };
        state.connections.insert(id, connection);
        id
    }

    pub(crate) fn tune(&self, conn: ConnId, frame_max: u32) {
        if let Some(connection) = self.lock().connections.get_mut(&conn) {
            connection.frame_max = frame_max.clamp(4096, 131_072);
        }
    }

    /// Forgets a connection: its unacked deliveries go back to their
    /// queues as redelivered, its exclusive queues are deleted.
    pub(crate) fn disconnect(&self, conn: ConnId) {
        let mut state = self.lock();
        let channels: Vec<u16> = match state.connections.get(&conn) {
            Some(connection) => connection.channels.keys().copied().collect(),
            None => return,
        };
        for channel in channels {
            state.close_channel(conn, channel);
        }
        state.connections.remove(&conn);
        let owned: Vec<String> = state
            .queues
            .iter()
            .filter(|(_, queue)| queue.exclusive_owner == Some(conn))
            .map(|(name, _)| name.clone())
            .collect();
        for name in owned {
            state.delete_queue(&name);
        }
        self.done(())
    }

    pub(crate) fn open_channel(&self, conn: ConnId, channel: u16) -> Result<(), AmqpError> {
        let mut state = self.lock();
        let connection = state.connection(conn)?;
        if connection.channels.contains_key(&channel) {
            return Err(AmqpError {
                code: 504,
                text: "CHANNEL_ERROR - second 'channel.open'".into(),
                connection: true,
            });
        }
        connection.channels.insert(channel, Channel::default());
        Ok(())
    }

    /// Whether the channel is open: 504 CHANNEL_ERROR if not.
    pub(crate) fn expect_open(&self, conn: ConnId, channel: u16) -> Result<(), AmqpError> {
        self.lock().channel(conn, channel).map(|_| ())
    }

    pub(crate) fn close_channel(&self, conn: ConnId, channel: u16) {
        let mut state = self.lock();
        state.close_channel(conn, channel);
        self.done(())
    }

    pub(crate) fn declare_exchange(
        &self,
        name: &str,
        kind: &str,
        passive: bool,
    ) -> Result<(), AmqpError> {
        let mut state = self.lock();
        match state.exchanges.get(name) {
            Some(existing) if !passive && existing != kind => Err(refuse(
                PRECONDITION_FAILED,
                format!(
                    "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{name}' in vhost '/': received '{kind}' but current is '{existing}'"
                ),
            )),
            Some(_) => Ok(()),
            None if passive => Err(no_exchange(name)),
            None if !matches!(kind, "topic" | "direct" | "fanout") => Err(AmqpError {
                code: 503,
                text: format!("COMMAND_INVALID - invalid exchange type '{kind}'"),
                connection: true,
            }),
            None => {
                state.exchanges.insert(name.to_owned(), kind.to_owned());
                Ok(())
            }
        }
    }

    pub(crate) fn delete_exchange(&self, name: &str) {
        let mut state = self.lock();
        state.exchanges.remove(name);
        state.bindings.retain(|binding| binding.exchange != name);
    }

    /// Declares a queue; returns its name and its ready and consumer counts.
    pub(crate) fn declare_queue(
        &self,
        conn: ConnId,
        declare: QueueDeclare,
    ) -> Result<(String, u32, u32), AmqpError> {
        let mut state = self.lock();
        let name = if declare.name.is_empty() {
            state.next_id += 1;
            format!("amq.gen-{}-{}", state.next_id, std::process::id())
        } else {
            declare.name
        };
        let counts = |queue: &Queue| (queue.ready.len() as u32, queue.consumers.len() as u32);
        if let Some(queue) = state.queues.get(&name) {
            if queue.exclusive_owner.is_some_and(|owner| owner != conn) {
                return Err(locked(&name));
            }
            if !declare.passive {
                // RabbitMQ's order: exclusivity (strict), durable,
                // auto-delete, then the arguments it knows.
                if queue.exclusive_owner != declare.exclusive.then_some(conn) {
                    return Err(locked(&name));
                }
                let inequivalent =
                    |what: &str, received: &dyn std::fmt::Debug, current: &dyn std::fmt::Debug| {
                        refuse(
                            PRECONDITION_FAILED,
                            format!(
                                "PRECONDITION_FAILED - inequivalent arg '{what}' for queue '{name}' in vhost '/': received {received:?} but current is {current:?}"
                            ),
                        )
                    };
                if queue.durable != declare.durable {
                    return Err(inequivalent("durable", &declare.durable, &queue.durable));
                }
                if queue.auto_delete != declare.auto_delete {
                    return Err(inequivalent(
                        "auto_delete",
                        &declare.auto_delete,
                        &queue.auto_delete,
                    ));
                }
                if let Some(key) = inequivalent_argument(&queue.arguments, &declare.arguments) {
                    let received = declare.arguments.get(&field(key));
                    let current = queue.arguments.get(&field(key));
                    return Err(inequivalent(key, &received, &current));
                }
            }
            let (ready, consumers) = counts(queue);
            return Ok((name, ready, consumers));
        }
        if declare.passive {
            return Err(refuse(
                NOT_FOUND,
                format!("NOT_FOUND - no queue '{name}' in vhost '/'"),
            ));
        }
        let queue = Queue {
            durable: declare.durable,
            exclusive_owner: declare.exclusive.then_some(conn),
            auto_delete: declare.auto_delete,
            arguments: declare.arguments,
            ready: VecDeque::new(),
            consumers: Vec::new(),
            cursor: 0,
            since: state.next_seq,
        };
        state.queues.insert(name.clone(), queue);
        // RabbitMQ binds every queue to the default exchange by its name;
        // `route` resolves the default exchange directly instead.
        self.done(Ok((name, 0, 0)))
    }

    pub(crate) fn bind(
        &self,
        conn: ConnId,
        queue: &str,
        exchange: &str,
        key: &str,
    ) -> Result<(), AmqpError> {
        let mut state = self.lock();
        state.usable_queue(conn, queue)?;
        if !state.exchanges.contains_key(exchange) {
            return Err(no_exchange(exchange));
        }
        let exists = state.bindings.iter().any(|b| b.joins(exchange, queue, key));
        if !exists {
            state.bindings.push(Binding {
                exchange: exchange.to_owned(),
                queue: queue.to_owned(),
                key: key.to_owned(),
                pattern: TopicPattern::new(key).ok(),
            });
        }
        Ok(())
    }

    pub(crate) fn unbind(
        &self,
        conn: ConnId,
        queue: &str,
        exchange: &str,
        key: &str,
    ) -> Result<(), AmqpError> {
        let mut state = self.lock();
        state.usable_queue(conn, queue)?;
        state.bindings.retain(|b| !b.joins(exchange, queue, key));
        Ok(())
    }

    pub(crate) fn purge(&self, conn: ConnId, queue: &str) -> Result<u32, AmqpError> {
        let mut state = self.lock();
        let queue = state.usable_queue(conn, queue)?;
        let count = queue.ready.len() as u32;
        queue.ready.clear();
        self.done(Ok(count))
    }

    pub(crate) fn delete_queue(&self, conn: ConnId, queue: &str) -> Result<u32, AmqpError> {
        let mut state = self.lock();
        let count = match state.queues.get(queue) {
            None => return Ok(0),
            Some(q) if q.exclusive_owner.is_some_and(|owner| owner != conn) => {
                return Err(locked(queue));
            }
            Some(q) => q.ready.len() as u32,
        };
        state.delete_queue(queue);
        self.done(Ok(count))
    }

    pub(crate) fn qos(&self, conn: ConnId, channel: u16, prefetch: u16) -> Result<(), AmqpError> {
        let mut state = self.lock();
        state.channel(conn, channel)?.prefetch = prefetch;
        Ok(())
    }

    pub(crate) fn confirm_select(&self, conn: ConnId, channel: u16) -> Result<(), AmqpError> {
        let mut state = self.lock();
        state.channel(conn, channel)?.confirm = true;
        Ok(())
    }

    /// Starts a consumer; `consume-ok` is written here, before the first
    /// delivery it may cause.
    pub(crate) fn consume(
        &self,
        conn: ConnId,
        channel: u16,
        consume: Consume,
    ) -> Result<(), AmqpError> {
        let Consume {
            queue,
            tag,
            no_ack,
            exclusive,
            no_wait,
        } = consume;
        let queue = queue.as_str();
        let mut state = self.lock();
        let q = state.usable_queue(conn, queue)?;
        if exclusive && !q.consumers.is_empty() {
            return Err(refuse(
                403,
                format!("ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"),
            ));
        }
        let tag = if tag.is_empty() {
            state.next_id += 1;
            format!("amq.ctag-{}", state.next_id)
        } else {
            tag
        };
        let chan = state.channel(conn, channel)?;
        if chan.consumers.contains_key(&tag) {
            return Err(AmqpError {
                code: 530,
                text: format!("NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"),
                connection: true,
            });
        }
        let prefetch = chan.prefetch;
        chan.consumers.insert(
            tag.clone(),
            Consumer {
                queue: queue.to_owned(),
                no_ack,
                prefetch,
                unacked: 0,
            },
        );
        if let Some(q) = state.queues.get_mut(queue) {
            q.consumers.push((conn, channel, tag.clone()));
        }
        if !no_wait {
            state.send(conn, |w| w.method(channel, 60, 21, &[Arg::Short(&tag)]));
        }
        state.pump(queue);
        self.done(Ok(()))
    }

    pub(crate) fn cancel(&self, conn: ConnId, channel: u16, tag: &str) -> Result<(), AmqpError> {
        let mut state = self.lock();
        state.cancel(conn, channel, tag);
        self.done(Ok(()))
    }

    /// Routes a message; in confirm mode, confirms it (after returning it
    /// when it was mandatory and unroutable).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn publish(
        &self,
        conn: ConnId,
        channel: u16,
        exchange: String,
        routing_key: String,
        mandatory: bool,
        properties: BasicProperties,
        body: Vec<u8>,
    ) -> Result<(), AmqpError> {
        let mut state = self.lock();
        if !exchange.is_empty() && !state.exchanges.contains_key(&exchange) {
            return Err(no_exchange(&exchange));
        }
        let message = Message {
            exchange,
            routing_key,
            properties: Arc::new(properties),
            body: body.into(),
            redelivered: false,
            seq: 0,
        };
        state.published.push(Published::new(
            &message.exchange,
            &message.routing_key,
            &message.properties,
            &message.body,
        ));
        let routed = state.enqueue(&message);
        if !routed && mandatory {
            let frame_max = state
                .connections
                .get(&conn)
                .map_or(131_072, |c| c.frame_max);
            state.send(conn, |w| {
                w.method(
                    channel,
                    60,
                    50,
                    &[
                        Arg::U16(312),
                        Arg::Short("NO_ROUTE"),
                        Arg::Short(&message.exchange),
                        Arg::Short(&message.routing_key),
                    ],
                );
                w.content(channel, &message.properties, &message.body, frame_max);
            });
        }
        let nack = state.nack_next > 0;
        let chan = state.channel(conn, channel)?;
        if chan.confirm {
            chan.published += 1;
            let tag = chan.published;
            if nack {
                state.nack_next -= 1;
                state.send(conn, |w| {
                    w.method(channel, 60, 120, &[Arg::U64(tag), Arg::U8(0)])
                });
            } else {
                state.send(conn, |w| {
                    w.method(channel, 60, 80, &[Arg::U64(tag), Arg::U8(0)])
                });
            }
        }
        self.done(Ok(()))
    }

    /// `basic.get`: writes `get-ok` with the message, or `get-empty`.
    pub(crate) fn get(
        &self,
        conn: ConnId,
        channel: u16,
        queue: &str,
        no_ack: bool,
    ) -> Result<(), AmqpError> {
        let mut state = self.lock();
        let q = state.usable_queue(conn, queue)?;
        let Some(message) = q.ready.pop_front() else {
            state.send(conn, |w| w.method(channel, 60, 72, &[Arg::Short("")]));
            return Ok(());
        };
        let remaining = q.ready.len() as u32;
        let frame_max = state
            .connections
            .get(&conn)
            .map_or(131_072, |c| c.frame_max);
        let chan = state.channel(conn, channel)?;
        chan.next_tag += 1;
        let tag = chan.next_tag;
        if !no_ack {
            chan.unacked.insert(
                tag,
                Unacked {
                    queue: queue.to_owned(),
                    consumer: None,
                    message: message.clone(),
                },
            );
        }
        state.send(conn, |w| {
            w.method(
                channel,
                60,
                71,
                &[
                    Arg::U64(tag),
                    Arg::U8(u8::from(message.redelivered)),
                    Arg::Short(&message.exchange),
                    Arg::Short(&message.routing_key),
                    Arg::U32(remaining),
                ],
            );
            w.content(channel, &message.properties, &message.body, frame_max);
        });
        self.done(Ok(()))
    }

    pub(crate) fn ack(
        &self,
        conn: ConnId,
        channel: u16,
        tag: u64,
        multiple: bool,
    ) -> Result<(), AmqpError> {
        let mut state = self.lock();
        let settled = state.settle(conn, channel, tag, multiple)?;
        for (queue, _) in &settled {
            state.pump(queue);
        }
        self.done(Ok(()))
    }

    /// `basic.nack` and `basic.reject`: requeue as redelivered, or dead-letter.
    pub(crate) fn nack(
        &self,
        conn: ConnId,
        channel: u16,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        let mut state = self.lock();
        let settled = state.settle(conn, channel, tag, multiple)?;
        state.reject(settled, requeue);
        self.done(Ok(()))
    }

    /// `basic.recover`: every unacked delivery of the channel goes back.
    pub(crate) fn recover(&self, conn: ConnId, channel: u16) -> Result<(), AmqpError> {
        let mut state = self.lock();
        let settled = state.settle(conn, channel, 0, true)?;
        state.reject(settled, true);
        self.done(Ok(()))
    }

    // ---- the harness's view ----

    pub(crate) fn published(&self) -> Vec<Published> {
        self.lock().published.clone()
    }

    /// How many published messages satisfy `filter`, without copying any.
    pub(crate) fn count_published(&self, filter: impl Fn(&Published) -> bool) -> usize {
        self.lock().published.iter().filter(|p| filter(p)).count()
    }

    pub(crate) fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead_letters.clone()
    }

    /// Idle: no delivery is waiting for its ack, and no queue that has a
    /// consumer holds a ready message.
    pub(crate) fn is_idle(&self) -> bool {
        let state = self.lock();
        let unacked = state
            .connections
            .values()
            .flat_map(|c| c.channels.values())
            .any(|c| !c.unacked.is_empty());
        let waiting = state
            .queues
            .values()
            .any(|q| !q.consumers.is_empty() && !q.ready.is_empty());
        !unacked && !waiting
    }

    pub(crate) fn queue_depth(&self, queue: &str) -> Option<usize> {
        self.lock().queues.get(queue).map(|q| q.ready.len())
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.lock().connections.len()
    }

    pub(crate) fn set_dead_letter(&self, queue: &str, exchange: &str) {
        self.lock()
            .dead_letter_policies
            .insert(queue.to_owned(), exchange.to_owned());
    }

    pub(crate) fn nack_next_publishes(&self, count: u32) {
        self.lock().nack_next += count;
    }

    /// Closes every connection as RabbitMQ does when an operator closes it:
    /// `connection.close` 320, then the socket a moment later.
    pub(crate) fn close_connections(&self, abrupt: bool) {
        let state = self.lock();
        for connection in state.connections.values() {
            if !abrupt {
                FrameWriter::send(&connection.outgoing, |w| {
                    w.close_method(0, 320, "CONNECTION_FORCED - Closed via the test kit");
                });
            }
            connection.abort.cancel();
        }
    }

    pub(crate) fn delete_queue_by_operator(&self, queue: &str) -> bool {
        let mut state = self.lock();
        let existed = state.queues.contains_key(queue);
        state.delete_queue(queue);
        self.done(existed)
    }
}

impl State {
    fn connection(&mut self, conn: ConnId) -> Result<&mut Connection, AmqpError> {
        self.connections.get_mut(&conn).ok_or_else(|| AmqpError {
            code: 320,
            text: "CONNECTION_FORCED".into(),
            connection: true,
        })
    }

    fn channel(&mut self, conn: ConnId, channel: u16) -> Result<&mut Channel, AmqpError> {
        self.connection(conn)?
            .channels
            .get_mut(&channel)
            .ok_or_else(|| AmqpError {
                code: 504,
                text: format!("CHANNEL_ERROR - expected 'channel.open' on channel {channel}"),
                connection: true,
            })
    }

    fn usable_queue(&mut self, conn: ConnId, name: &str) -> Result<&mut Queue, AmqpError> {
        match self.queues.get_mut(name) {
            None => Err(refuse(
                NOT_FOUND,
                format!("NOT_FOUND - no queue '{name}' in vhost '/'"),
            )),
            Some(queue) if queue.exclusive_owner.is_some_and(|owner| owner != conn) => {
                Err(locked(name))
            }
            Some(queue) => Ok(queue),
        }
    }

    /// Writes frames to a connection's socket queue.
    fn send(&self, conn: ConnId, build: impl FnOnce(&mut FrameWriter)) {
        if let Some(connection) = self.connections.get(&conn) {
            FrameWriter::send(&connection.outgoing, build);
        }
    }

    /// Puts a message in every queue it routes to; false when none.
    fn enqueue(&mut self, message: &Message) -> bool {
        let targets: Vec<String> = if message.exchange.is_empty() {
            vec![message.routing_key.clone()]
        } else {
            let kind = self
                .exchanges
                .get(&message.exchange)
                .map(String::as_str)
                .unwrap_or("topic");
            let mut targets: Vec<String> = self
                .bindings
                .iter()
                .filter(|b| b.exchange == message.exchange)
                .filter(|b| b.routes(kind, &message.routing_key))
                .map(|b| b.queue.clone())
                .collect();
            targets.sort();
            targets.dedup();
            targets
        };
        let mut routed = false;
        for name in targets {
            self.next_seq += 1;
            let seq = self.next_seq;
            if let Some(queue) = self.queues.get_mut(&name) {
                queue.ready.push_back(Message {
                    seq,
                    ..message.clone()
                });
                routed = true;
                self.pump(&name);
            }
        }
        routed
    }

    /// Hands ready messages to consumers with room, in turn.
    fn pump(&mut self, name: &str) {
        loop {
            let Some(queue) = self.queues.get_mut(name) else {
                return;
            };
            if queue.ready.is_empty() || queue.consumers.is_empty() {
                return;
            }
            let count = queue.consumers.len();
            let mut chosen = None;
            for step in 0..count {
                let index = (queue.cursor + step) % count;
                let (conn, channel, tag) = &queue.consumers[index];
                let has_room = self
                    .connections
                    .get(conn)
                    .and_then(|c| c.channels.get(channel))
                    .and_then(|c| c.consumers.get(tag))
                    .is_some_and(|c| {
                        c.no_ack || c.prefetch == 0 || c.unacked < u32::from(c.prefetch)
                    });
                if has_room {
                    chosen = Some(index);
                    break;
                }
            }
            let Some(index) = chosen else { return };
            queue.cursor = (index + 1) % count;
            let (conn, channel, tag) = queue.consumers[index].clone();
            let Some(message) = queue.ready.pop_front() else {
                return;
            };
            let Some(connection) = self.connections.get_mut(&conn) else {
                return;
            };
            let frame_max = connection.frame_max;
            let Some(chan) = connection.channels.get_mut(&channel) else {
                return;
            };
            chan.next_tag += 1;
            let delivery_tag = chan.next_tag;
            let Some(consumer) = chan.consumers.get_mut(&tag) else {
                return;
            };
            if !consumer.no_ack {
                consumer.unacked += 1;
                chan.unacked.insert(
                    delivery_tag,
                    Unacked {
                        queue: name.to_owned(),
                        consumer: Some(tag.clone()),
                        message: message.clone(),
                    },
                );
            }
            self.send(conn, |w| {
                w.method(
                    channel,
                    60,
                    60,
                    &[
                        Arg::Short(&tag),
                        Arg::U64(delivery_tag),
                        Arg::U8(u8::from(message.redelivered)),
                        Arg::Short(&message.exchange),
                        Arg::Short(&message.routing_key),
                    ],
                );
                w.content(channel, &message.properties, &message.body, frame_max);
            });
        }
    }

    /// Removes acked or rejected deliveries from the channel's ledger.
    fn settle(
        &mut self,
        conn: ConnId,
        channel: u16,
        tag: u64,
        multiple: bool,
    ) -> Result<Vec<(String, Message)>, AmqpError> {
        let chan = self.channel(conn, channel)?;
        // As RabbitMQ: `multiple` with tag 0 settles everything outstanding;
        // any other tag must be outstanding itself.
        let tags: Vec<u64> = match (multiple, tag) {
            (true, 0) => chan.unacked.keys().copied().collect(),
            (true, _) => chan.unacked.range(..=tag).map(|(t, _)| *t).collect(),
            (false, _) => vec![tag],
        };
        let known = (multiple && tag == 0) || chan.unacked.contains_key(&tag);
        if !known {
            return Err(refuse(
                PRECONDITION_FAILED,
                format!("PRECONDITION_FAILED - unknown delivery tag {tag}"),
            ));
        }
        let mut settled = Vec::with_capacity(tags.len());
        for tag in tags {
            if let Some(entry) = chan.unacked.remove(&tag) {
                if let Some(consumer) = entry
                    .consumer
                    .as_ref()
                    .and_then(|c| chan.consumers.get_mut(c))
                {
                    consumer.unacked = consumer.unacked.saturating_sub(1);
                }
                settled.push((entry.queue, entry.message));
            }
        }
        Ok(settled)
    }

    /// Requeues (as redelivered, back to its place in the queue, as
    /// RabbitMQ's classic queues do) or dead-letters.
    fn reject(&mut self, settled: Vec<(String, Message)>, requeue: bool) {
        let mut touched = Vec::new();
        for (queue, mut message) in settled.into_iter().rev() {
            let Some(q) = self
                .queues
                .get_mut(&queue)
                .filter(|q| message.seq > q.since)
            else {
                // Its queue was deleted, and the message with it.
                continue;
            };
            if requeue {
                message.redelivered = true;
                let place = q.ready.partition_point(|m| m.seq < message.seq);
                q.ready.insert(place, message);
            } else {
                self.dead_letter(&queue, message);
            }
            touched.push(queue);
        }
        touched.dedup();
        for queue in touched {
            self.pump(&queue);
        }
    }

    fn dead_letter(&mut self, queue: &str, message: Message) {
        let arguments = self.queues.get(queue).map(|q| &q.arguments);
        let argument = |key: &str| -> Option<String> {
            let key = key.try_into().ok()?;
            match arguments?.get(&key)? {
                FieldValue::S(text) => Some(text.to_string()),
                _ => None,
            }
        };
        let exchange = argument("x-dead-letter-exchange")
            .or_else(|| self.dead_letter_policies.get(queue).cloned());
        let routing_key =
            argument("x-dead-letter-routing-key").unwrap_or_else(|| message.routing_key.clone());
        let Some(exchange) = exchange else { return };
        let properties = with_death(&message, queue);
        self.dead_letters.push(DeadLetter::new(
            queue,
            &Published::new(
                &message.exchange,
                &message.routing_key,
                &properties,
                &message.body,
            ),
        ));
        if !exchange.is_empty() && !self.exchanges.contains_key(&exchange) {
            return;
        }
        let dead = Message {
            exchange,
            routing_key,
            properties: Arc::new(properties),
            body: message.body,
            redelivered: false,
            seq: 0,
        };
        self.enqueue(&dead);
    }

    fn cancel(&mut self, conn: ConnId, channel: u16, tag: &str) {
        let Some(consumer) = self
            .connections
            .get_mut(&conn)
            .and_then(|c| c.channels.get_mut(&channel))
            .and_then(|c| c.consumers.remove(tag))
        else {
            return;
        };
        let delete = match self.queues.get_mut(&consumer.queue) {
            Some(queue) => {
                queue
                    .consumers
                    .retain(|(c, ch, t)| !(*c == conn && *ch == channel && t == tag));
                queue.cursor = 0;
                queue.auto_delete && queue.consumers.is_empty()
            }
            None => false,
        };
        if delete {
            self.delete_queue(&consumer.queue);
        }
    }

    fn close_channel(&mut self, conn: ConnId, channel: u16) {
        let tags: Vec<String> = self
            .connections
            .get(&conn)
            .and_then(|c| c.channels.get(&channel))
            .map(|c| c.consumers.keys().cloned().collect())
            .unwrap_or_default();
        for tag in tags {
            self.cancel(conn, channel, &tag);
        }
        let Some(chan) = self
            .connections
            .get_mut(&conn)
            .and_then(|c| c.channels.remove(&channel))
        else {
            return;
        };
        let settled = chan
            .unacked
            .into_values()
            .map(|u| (u.queue, u.message))
            .collect();
        self.reject(settled, true);
    }

    /// Deletes a queue and its bindings; its consumers are told with a
    /// server-sent `basic.cancel`, as RabbitMQ does.
    fn delete_queue(&mut self, name: &str) {
        let Some(queue) = self.queues.remove(name) else {
            return;
        };
        self.bindings.retain(|binding| binding.queue != name);
        for (conn, channel, tag) in queue.consumers {
            if let Some(chan) = self
                .connections
                .get_mut(&conn)
                .and_then(|c| c.channels.get_mut(&channel))
            {
                chan.consumers.remove(&tag);
            }
            self.send(conn, |w| {
                w.method(channel, 60, 30, &[Arg::Short(&tag), Arg::U8(0)])
            });
        }
    }
}

/// The queue arguments RabbitMQ compares when a queue is declared again
/// (its `declare_args`); it ignores any other.
const COMPARED_ARGUMENTS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-quorum-initial-group-size",
    "x-queue-type",
    "x-queue-master-locator",
    "x-queue-leader-locator",
    "x-initial-cluster-size",
    "x-delivery-limit",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
];

fn field(key: &str) -> amqprs::FieldName {
    key.try_into().unwrap_or_default()
}

/// The first compared argument whose values differ; integers of any width
/// are equal when their values are, as RabbitMQ compares type classes.
fn inequivalent_argument(current: &FieldTable, received: &FieldTable) -> Option<&'static str> {
    let integer = |value: &FieldValue| match value {
        FieldValue::b(n) => Some(i64::from(*n)),
        FieldValue::B(n) => Some(i64::from(*n)),
        FieldValue::s(n) => Some(i64::from(*n)),
        FieldValue::u(n) => Some(i64::from(*n)),
        FieldValue::I(n) => Some(i64::from(*n)),
        FieldValue::i(n) => Some(i64::from(*n)),
        FieldValue::l(n) => Some(*n),
        _ => None,
    };
    COMPARED_ARGUMENTS.iter().copied().find(|key| {
        let key = field(key);
        match (current.get(&key), received.get(&key)) {
            (None, None) => false,
            (Some(a), Some(b)) => match (integer(a), integer(b)) {
                (Some(a), Some(b)) => a != b,
                _ => a != b,
            },
            _ => true,
        }
    })
}

fn no_exchange(name: &str) -> AmqpError {
    refuse(
        NOT_FOUND,
        format!("NOT_FOUND - no exchange '{name}' in vhost '/'"),
    )
}

fn locked(name: &str) -> AmqpError {
    refuse(
        RESOURCE_LOCKED,
        format!(
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '/'"
        ),
    )
}

/// The message's properties with RabbitMQ's `x-death` bookkeeping: one
/// entry per (queue, reason), its count raised on each new death (the rest
/// of the entry is the first death's), the latest first, and the
/// `x-first-death-*` headers set once.
fn with_death(message: &Message, queue: &str) -> BasicProperties {
    let mut properties = (*message.properties).clone();
    let mut headers = properties.headers().cloned().unwrap_or_default();
    let key = |k: &str| -> amqprs::FieldName { k.try_into().unwrap_or_default() };
    let long = |s: &str| FieldValue::S(s.try_into().unwrap_or_default());
    let mut deaths: Vec<FieldValue> = match headers.get(&key("x-death")) {
        Some(FieldValue::A(array)) => array.clone().into(),
        _ => Vec::new(),
    };
    let same = |entry: &FieldValue| match entry {
        FieldValue::F(table) => {
            table.get(&key("queue")) == Some(&long(queue))
                && table.get(&key("reason")) == Some(&long("rejected"))
        }
        _ => false,
    };
    let previous = deaths
        .iter()
        .position(same)
        .map(|index| deaths.remove(index));
    // RabbitMQ 3.10 keeps the first death's entry and raises its count.
    let entry = match previous {
        Some(FieldValue::F(mut entry)) => {
            let count = match entry.get(&key("count")) {
                Some(FieldValue::l(count)) => FieldValue::l(count.saturating_add(1)),
                Some(FieldValue::I(count)) => FieldValue::I(count.saturating_add(1)),
                _ => FieldValue::l(1),
            };
            // `insert` over a key miscounts the table's length: remove first.
            entry.remove(&key("count"));
            entry.insert(key("count"), count);
            entry
        }
        _ => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut entry = FieldTable::new();
            entry.insert(key("count"), FieldValue::l(1));
            entry.insert(key("reason"), long("rejected"));
            entry.insert(key("queue"), long(queue));
            entry.insert(key("time"), FieldValue::T(now));
            entry.insert(key("exchange"), long(&message.exchange));
            let keys: Vec<FieldValue> = vec![long(&message.routing_key)];
            if let Ok(array) = keys.try_into() {
                entry.insert(key("routing-keys"), FieldValue::A(array));
            }
            entry
        }
    };
    deaths.insert(0, FieldValue::F(entry));
    headers.remove(&key("x-death"));
    if let Ok(array) = deaths.try_into() {
        headers.insert(key("x-death"), FieldValue::A(array));
    }
    for (name, value) in [
        ("x-first-death-exchange", message.exchange.as_str()),
        ("x-first-death-queue", queue),
        ("x-first-death-reason", "rejected"),
    ] {
        if headers.get(&key(name)).is_none() {
            headers.insert(key(name), long(value));
        }
    }
    properties.with_headers(headers);
    properties
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(count: FieldValue) -> FieldTable {
        let mut entry = FieldTable::new();
        entry.insert(field("queue"), FieldValue::S("q".try_into().unwrap()));
        entry.insert(
            field("reason"),
            FieldValue::S("rejected".try_into().unwrap()),
        );
        entry.insert(field("count"), count);
        entry
    }

    fn count_after_death(count: FieldValue) -> Option<FieldValue> {
        let deaths: Vec<FieldValue> = vec![FieldValue::F(entry(count))];
        let mut headers = FieldTable::new();
        headers.insert(field("x-death"), FieldValue::A(deaths.try_into().unwrap()));
        let message = Message {
            exchange: String::new(),
            routing_key: "q".into(),
            properties: Arc::new(BasicProperties::default().with_headers(headers).finish()),
            body: Arc::from(&b""[..]),
            redelivered: false,
            seq: 0,
        };
        let properties = with_death(&message, "q");
        match properties.headers()?.get(&field("x-death"))? {
            FieldValue::A(deaths) => match Vec::from(deaths.clone()).first()? {
                FieldValue::F(entry) => entry.get(&field("count")).cloned(),
                _ => None,
            },
            _ => None,
        }
    }

    #[test]
    fn testkit_a_death_count_from_a_client_is_raised_without_overflow() {
        assert_eq!(count_after_death(FieldValue::l(4)), Some(FieldValue::l(5)));
        assert_eq!(count_after_death(FieldValue::I(4)), Some(FieldValue::I(5)));
        assert_eq!(
            count_after_death(FieldValue::l(i64::MAX)),
            Some(FieldValue::l(i64::MAX))
        );
        assert_eq!(
            count_after_death(FieldValue::I(i32::MAX)),
            Some(FieldValue::I(i32::MAX))
        );
    }
}
