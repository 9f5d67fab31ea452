//! The in-memory broker's front door: a loopback listener and one task
//! per client connection, turning frames into broker operations.
//!
//! The runtime reaches the in-memory bus through the same amqprs client
//! it uses against RabbitMQ, so the code under test is the code that runs
//! in production, all the way down to the socket.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use amqprs::{BasicProperties, FieldTable, FieldValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::broker::{AmqpError, Broker, ConnId};
use super::frame::{self, Arg, Frame, FrameError, FrameWriter, Method};

/// RabbitMQ's default `max_message_size` (128 MiB).
const MAX_MESSAGE_SIZE: u64 = 128 << 20;

/// The largest frame accepted before `tune-ok` settles it.
const FRAME_MAX: u32 = 131_072;

/// Accepts connections until `stop` is cancelled.
pub(crate) async fn listen(listener: TcpListener, broker: Arc<Broker>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => {
                if let Ok((socket, _)) = accepted {
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(serve(socket, broker.clone(), stop.child_token()));
                }
            }
        }
    }
}

/// A message whose content frames are still arriving.
struct Incoming {
    exchange: String,
    routing_key: String,
    mandatory: bool,
    size: u64,
    properties: Option<BasicProperties>,
    body: Vec<u8>,
}

/// One client connection, from the protocol header to the close.
async fn serve(socket: TcpStream, broker: Arc<Broker>, abort: CancellationToken) {
    let (mut reader, writer) = socket.into_split();
    let (outgoing, queue) = mpsc::unbounded_channel();
    tokio::spawn(write_frames(writer, queue, abort.clone()));
    let mut header = [0u8; 8];
    if reader.read_exact(&mut header).await.is_err() || &header != frame::PROTOCOL_HEADER {
        // The writer sends this, then ends the socket once `outgoing` is gone.
        let _ = outgoing.send(frame::PROTOCOL_HEADER.to_vec());
        return;
    }
    FrameWriter::send(&outgoing, |w| {
        w.method(
            0,
            10,
            10,
            &[
                Arg::U8(0),
                Arg::U8(9),
                Arg::Table(&server_properties()),
                Arg::Long("PLAIN AMQPLAIN"),
                Arg::Long("en_US"),
            ],
        )
    });
    let conn = broker.connect(outgoing.clone(), abort.clone());
    let mut session = Session {
        broker: &broker,
        conn,
        outgoing,
        frame_max: FRAME_MAX,
        incoming: HashMap::new(),
        closing: Vec::new(),
        heartbeat: None,
        abort: abort.clone(),
    };
    tokio::select! {
        _ = abort.cancelled() => {}
        () = session.run(&mut reader) => {}
    }
    broker.disconnect(conn);
    // Give the writer a moment to flush a final close-ok or close.
    tokio::time::sleep(Duration::from_millis(20)).await;
    abort.cancel();
}

/// Writes queued frames, several per system call when they pile up.
async fn write_frames(
    mut writer: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
    abort: CancellationToken,
) {
    loop {
        // Frames queued before the abort go first: `close_connections`
        // queues a connection.close and aborts at once.
        let mut bytes = tokio::select! {
            biased;
            next = queue.recv() => match next { Some(bytes) => bytes, None => break },
            _ = abort.cancelled() => break,
        };
        while let Ok(more) = queue.try_recv() {
            bytes.extend_from_slice(&more);
        }
        if writer.write_all(&bytes).await.is_err() {
            abort.cancel();
            break;
        }
    }
    let _ = writer.shutdown().await;
}

fn server_properties() -> FieldTable {
    let key = |k: &str| k.try_into().unwrap_or_default();
    let mut capabilities = FieldTable::new();
    for name in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "per_consumer_qos",
        "exchange_exchange_bindings",
    ] {
        capabilities.insert(key(name), FieldValue::t(true));
    }
    let mut properties = FieldTable::new();
    properties.insert(key("capabilities"), FieldValue::F(capabilities));
    properties.insert(
        key("product"),
        FieldValue::S("bus in-memory broker".try_into().unwrap_or_default()),
    );
    properties.insert(
        key("version"),
        FieldValue::S(env!("CARGO_PKG_VERSION").try_into().unwrap_or_default()),
    );
    properties
}

struct Session<'a> {
    broker: &'a Broker,
    conn: ConnId,
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    frame_max: u32,
    incoming: HashMap<u16, Incoming>,
    /// Channels the broker closed, waiting for the client's `close-ok`.
    closing: Vec<u16>,
    /// The heartbeat interval the client asked for, if any.
    heartbeat: Option<Duration>,
    abort: CancellationToken,
}

impl Session<'_> {
    async fn run(&mut self, reader: &mut OwnedReadHalf) {
        loop {
            let read = frame::read_frame(reader, self.frame_max);
            let read = match self.heartbeat {
                // As RabbitMQ: a peer silent for two heartbeat intervals is
                // gone, and what it held goes back to its queues.
                Some(every) => match tokio::time::timeout(every * 2, read).await {
                    Ok(read) => read,
                    Err(_) => return,
                },
                None => read.await,
            };
            let frame = match read {
                Ok(frame) => frame,
                Err(FrameError::Closed) => return,
                Err(FrameError::Malformed(text)) => {
                    return self.close_connection(AmqpError {
                        code: 501,
                        text: format!("FRAME_ERROR - {text}"),
                        connection: true,
                    });
                }
            };
            let result = match frame {
                Frame::Heartbeat => Ok(()),
                Frame::Method(channel, method) => match method {
                    Method::ConnectionClose => {
                        self.send(|w| w.method(0, 10, 51, &[]));
                        return;
                    }
                    Method::ConnectionCloseOk => return,
                    method => self.method(channel, method),
                },
                Frame::Header(channel, size, properties) => self.header(channel, size, *properties),
                Frame::Body(channel, bytes) => self.body(channel, bytes),
            };
            if let Err(error) = result {
                if error.connection {
                    return self.close_connection(error);
                }
            }
        }
    }

    fn send(&self, build: impl FnOnce(&mut FrameWriter)) {
        FrameWriter::send(&self.outgoing, build);
    }

    fn close_connection(&self, error: AmqpError) {
        self.send(|w| w.close_method(0, error.code, &error.text));
    }

    /// A channel error: the channel is closed, the connection goes on.
    fn close_channel(&mut self, channel: u16, error: AmqpError) -> Result<(), AmqpError> {
        if error.connection {
            return Err(error);
        }
        self.incoming.remove(&channel);
        self.broker.close_channel(self.conn, channel);
        self.closing.push(channel);
        self.send(|w| w.close_method(channel, error.code, &error.text));
        Ok(())
    }

    fn method(&mut self, channel: u16, method: Method) -> Result<(), AmqpError> {
        if let Some(index) = self.closing.iter().position(|c| *c == channel) {
            // After a server-sent close, everything is dropped but the
            // close-ok, and a close that crossed ours, which is answered.
            match method {
                Method::ChannelCloseOk => {
                    self.closing.swap_remove(index);
                }
                Method::ChannelClose => self.send(|w| w.method(channel, 20, 41, &[])),
                _ => {}
            }
            return Ok(());
        }
        if self.incoming.contains_key(&channel) {
            return Err(unexpected("a method where the content of basic.publish"));
        }
        // As RabbitMQ: anything but the handshake on a channel that is not
        // open is a connection error, and has no effect.
        let opening = matches!(
            method,
            Method::StartOk
                | Method::TuneOk { .. }
                | Method::ConnectionOpen
                | Method::ChannelOpen
                | Method::ChannelCloseOk
        );
        if !opening {
            self.broker.expect_open(self.conn, channel)?;
        }
        let result = self.apply(channel, method);
        match result {
            Err(error) => self.close_channel(channel, error),
            Ok(()) => Ok(()),
        }
    }

    fn apply(&mut self, channel: u16, method: Method) -> Result<(), AmqpError> {
        let (broker, conn) = (self.broker, self.conn);
        match method {
            Method::StartOk => self.send(|w| {
                w.method(
                    0,
                    10,
                    30,
                    &[Arg::U16(2047), Arg::U32(FRAME_MAX), Arg::U16(60)],
                )
            }),
            Method::TuneOk {
                frame_max,
                heartbeat,
            } => {
                self.frame_max = if frame_max == 0 {
                    FRAME_MAX
                } else {
                    frame_max.min(FRAME_MAX)
                };
                broker.tune(conn, self.frame_max);
                self.heartbeat = (heartbeat > 0).then(|| Duration::from_secs(u64::from(heartbeat)));
                if heartbeat > 0 {
                    tokio::spawn(beat(
                        self.outgoing.clone(),
                        Duration::from_secs(u64::from(heartbeat)) / 2,
                        self.abort.clone(),
                    ));
                }
            }
            Method::ConnectionOpen => self.send(|w| w.method(0, 10, 41, &[Arg::Short("")])),
            Method::ChannelOpen => {
                broker.open_channel(conn, channel)?;
                self.send(|w| w.method(channel, 20, 11, &[Arg::Long("")]));
            }
            Method::ChannelClose => {
                self.incoming.remove(&channel);
                broker.close_channel(conn, channel);
                self.send(|w| w.method(channel, 20, 41, &[]));
            }
            Method::ChannelCloseOk | Method::CancelOk => {}
            Method::ChannelFlow { active } => {
                self.send(|w| w.method(channel, 20, 21, &[Arg::U8(u8::from(active))]))
            }
            Method::ExchangeDeclare {
                name,
                kind,
                passive,
                no_wait,
            } => {
                broker.declare_exchange(&name, &kind, passive)?;
                self.ok(channel, no_wait, 40, 11, &[]);
            }
            Method::ExchangeDelete { name, no_wait } => {
                broker.delete_exchange(&name);
                self.ok(channel, no_wait, 40, 21, &[]);
            }
            Method::QueueDeclare(declare) => {
                let no_wait = declare.no_wait;
                let (name, ready, consumers) = broker.declare_queue(conn, declare)?;
                self.ok(
                    channel,
                    no_wait,
                    50,
                    11,
                    &[Arg::Short(&name), Arg::U32(ready), Arg::U32(consumers)],
                );
            }
            Method::QueueBind {
                queue,
                exchange,
                key,
                no_wait,
            } => {
                broker.bind(conn, &queue, &exchange, &key)?;
                self.ok(channel, no_wait, 50, 21, &[]);
            }
            Method::QueueUnbind {
                queue,
                exchange,
                key,
            } => {
                broker.unbind(conn, &queue, &exchange, &key)?;
                self.ok(channel, false, 50, 51, &[]);
            }
            Method::QueuePurge { queue, no_wait } => {
                let count = broker.purge(conn, &queue)?;
                self.ok(channel, no_wait, 50, 31, &[Arg::U32(count)]);
            }
            Method::QueueDelete { queue, no_wait } => {
                let count = broker.delete_queue(conn, &queue)?;
                self.ok(channel, no_wait, 50, 41, &[Arg::U32(count)]);
            }
            Method::Qos { prefetch } => {
                broker.qos(conn, channel, prefetch)?;
                self.ok(channel, false, 60, 11, &[]);
            }
            Method::Consume(consume) => broker.consume(conn, channel, consume)?,
            Method::Cancel { tag, no_wait } => {
                broker.cancel(conn, channel, &tag)?;
                self.ok(channel, no_wait, 60, 31, &[Arg::Short(&tag)]);
            }
            Method::Publish {
                exchange,
                key,
                mandatory,
            } => {
                let incoming = Incoming {
                    exchange,
                    routing_key: key,
                    mandatory,
                    size: 0,
                    properties: None,
                    body: Vec::new(),
                };
                self.incoming.insert(channel, incoming);
            }
            Method::Get { queue, no_ack } => broker.get(conn, channel, &queue, no_ack)?,
            Method::Ack { tag, multiple } => broker.ack(conn, channel, tag, multiple)?,
            Method::Nack {
                tag,
                multiple,
                requeue,
            } => broker.nack(conn, channel, tag, multiple, requeue)?,
            Method::Recover => {
                broker.recover(conn, channel)?;
                self.send(|w| w.method(channel, 60, 111, &[]));
            }
            Method::ConfirmSelect { no_wait } => {
                broker.confirm_select(conn, channel)?;
                self.ok(channel, no_wait, 85, 11, &[]);
            }
            Method::Unknown(class, id) => {
                return Err(AmqpError {
                    code: 540,
                    text: format!(
                        "NOT_IMPLEMENTED - method {class}.{id} is not supported by the in-memory bus"
                    ),
                    connection: true,
                });
            }
            Method::ConnectionClose | Method::ConnectionCloseOk => {}
        }
        Ok(())
    }

    fn ok(&self, channel: u16, no_wait: bool, class: u16, id: u16, args: &[Arg<'_>]) {
        if !no_wait {
            self.send(|w| w.method(channel, class, id, args));
        }
    }

    fn header(
        &mut self,
        channel: u16,
        size: u64,
        properties: BasicProperties,
    ) -> Result<(), AmqpError> {
        if self.closing.contains(&channel) {
            return Ok(());
        }
        let Some(incoming) = self
            .incoming
            .get_mut(&channel)
            .filter(|i| i.properties.is_none())
        else {
            return Err(unexpected("a content header where a method"));
        };
        if size > MAX_MESSAGE_SIZE {
            let text = format!(
                "PRECONDITION_FAILED - message size {size} is larger than configured max size {MAX_MESSAGE_SIZE}"
            );
            return self.close_channel(
                channel,
                AmqpError {
                    code: 406,
                    text,
                    connection: false,
                },
            );
        }
        incoming.size = size;
        incoming.properties = Some(properties);
        // Grow with what arrives: a header alone must not reserve much.
        incoming.body.reserve(size.min(1 << 20) as usize);
        if size == 0 {
            self.complete(channel)
        } else {
            Ok(())
        }
    }

    fn body(&mut self, channel: u16, bytes: Vec<u8>) -> Result<(), AmqpError> {
        if self.closing.contains(&channel) {
            return Ok(());
        }
        let Some(incoming) = self
            .incoming
            .get_mut(&channel)
            .filter(|i| i.properties.is_some())
        else {
            return Err(unexpected("a content body where a method"));
        };
        if (incoming.body.len() + bytes.len()) as u64 > incoming.size {
            return Err(AmqpError {
                code: 501,
                text: "FRAME_ERROR - content body longer than its header announced".into(),
                connection: true,
            });
        }
        incoming.body.extend_from_slice(&bytes);
        if incoming.body.len() as u64 >= incoming.size {
            self.complete(channel)
        } else {
            Ok(())
        }
    }

    fn complete(&mut self, channel: u16) -> Result<(), AmqpError> {
        let Some(incoming) = self.incoming.remove(&channel) else {
            return Ok(());
        };
        let properties = incoming.properties.unwrap_or_default();
        let published = self.broker.publish(
            self.conn,
            channel,
            incoming.exchange,
            incoming.routing_key,
            incoming.mandatory,
            properties,
            incoming.body,
        );
        match published {
            Err(error) => self.close_channel(channel, error),
            Ok(()) => Ok(()),
        }
    }
}

fn unexpected(what: &str) -> AmqpError {
    AmqpError {
        code: 505,
        text: format!("UNEXPECTED_FRAME - {what} was expected"),
        connection: true,
    }
}

/// Sends heartbeats so that the client's own liveness check is satisfied.
async fn beat(outgoing: mpsc::UnboundedSender<Vec<u8>>, every: Duration, abort: CancellationToken) {
    let every = every.max(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = abort.cancelled() => return,
            _ = tokio::time::sleep(every) => FrameWriter::send(&outgoing, FrameWriter::heartbeat),
        }
    }
}
