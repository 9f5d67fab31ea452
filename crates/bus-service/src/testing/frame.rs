//! The AMQP 0-9-1 framing the in-memory broker speaks: reading frames off
//! the socket, decoding the methods a client sends, encoding the ones the
//! broker sends.
//!
//! Only the methods the runtime, the `bus` tools and amqprs use are known;
//! anything else is answered with `NOT_IMPLEMENTED`, as a strict broker
//! would, so a drift shows up as an error rather than as silence.

use amqprs::{BasicProperties, FieldTable};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc::UnboundedSender;

/// The protocol header a client opens with.
pub(crate) const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
const FRAME_END: u8 = 0xCE;
const METHOD: u8 = 1;
const HEADER: u8 = 2;
const BODY: u8 = 3;
const HEARTBEAT: u8 = 8;

/// A frame's payload, read whole.
pub(crate) enum Frame {
    Method(u16, Method),
    Header(u16, u64, Box<BasicProperties>),
    Body(u16, Vec<u8>),
    Heartbeat,
}

/// Why the connection cannot go on.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The peer went away (or the socket failed).
    Closed,
    /// The bytes are not AMQP: reply code and text for `connection.close`.
    Malformed(&'static str),
}

/// The methods a client sends that the broker understands.
#[derive(Debug)]
pub(crate) enum Method {
    StartOk,
    TuneOk {
        frame_max: u32,
        heartbeat: u16,
    },
    ConnectionOpen,
    ConnectionClose,
    ConnectionCloseOk,
    ChannelOpen,
    ChannelClose,
    ChannelCloseOk,
    ChannelFlow {
        active: bool,
    },
    ExchangeDeclare {
        name: String,
        kind: String,
        passive: bool,
        no_wait: bool,
    },
    ExchangeDelete {
        name: String,
        no_wait: bool,
    },
    QueueDeclare(QueueDeclare),
    QueueBind {
        queue: String,
        exchange: String,
        key: String,
        no_wait: bool,
    },
    QueueUnbind {
        queue: String,
        exchange: String,
        key: String,
    },
    QueuePurge {
        queue: String,
        no_wait: bool,
    },
    QueueDelete {
        queue: String,
        no_wait: bool,
    },
    /// Prefetch counts per consumer, as amqprs asks (`global` false).
    Qos {
        prefetch: u16,
    },
    Consume(Consume),
    Cancel {
        tag: String,
        no_wait: bool,
    },
    CancelOk,
    Publish {
        exchange: String,
        key: String,
        mandatory: bool,
    },
    Get {
        queue: String,
        no_ack: bool,
    },
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
        requeue: bool,
    },
    Recover,
    ConfirmSelect {
        no_wait: bool,
    },
    /// A method this broker does not implement: class and method ids.
    Unknown(u16, u16),
}

/// `queue.declare`'s arguments.
#[derive(Debug)]
pub(crate) struct QueueDeclare {
    pub(crate) name: String,
    pub(crate) passive: bool,
    pub(crate) durable: bool,
    pub(crate) exclusive: bool,
    pub(crate) auto_delete: bool,
    pub(crate) no_wait: bool,
    pub(crate) arguments: FieldTable,
}

/// `basic.consume`'s arguments.
#[derive(Debug)]
pub(crate) struct Consume {
    pub(crate) queue: String,
    pub(crate) tag: String,
    pub(crate) no_ack: bool,
    pub(crate) exclusive: bool,
    pub(crate) no_wait: bool,
}

/// Reads one frame; `frame_max` bounds the payload so a bad size cannot
/// make the broker allocate gigabytes.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    socket: &mut R,
    frame_max: u32,
) -> Result<Frame, FrameError> {
    let mut head = [0u8; 7];
    socket
        .read_exact(&mut head)
        .await
        .map_err(|_| FrameError::Closed)?;
    let kind = head[0];
    let channel = u16::from_be_bytes([head[1], head[2]]);
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    if size > frame_max {
        return Err(FrameError::Malformed("frame larger than frame_max"));
    }
    let mut payload = vec![0u8; size as usize + 1];
    socket
        .read_exact(&mut payload)
        .await
        .map_err(|_| FrameError::Closed)?;
    if payload.pop() != Some(FRAME_END) {
        return Err(FrameError::Malformed("missing frame end"));
    }
    match kind {
        METHOD => Ok(Frame::Method(channel, decode_method(&payload)?)),
        HEADER => {
            let mut reader = Reader::new(&payload);
            let _class = reader.u16()?;
            let _weight = reader.u16()?;
            let size = reader.u64()?;
            check_properties(reader.rest())?;
            let properties: BasicProperties = amqp_serde::from_bytes(reader.rest())
                .map_err(|_| FrameError::Malformed("bad content header"))?;
            Ok(Frame::Header(channel, size, Box::new(properties)))
        }
        BODY => Ok(Frame::Body(channel, payload)),
        HEARTBEAT => Ok(Frame::Heartbeat),
        _ => Err(FrameError::Malformed("unknown frame type")),
    }
}

fn decode_method(payload: &[u8]) -> Result<Method, FrameError> {
    let mut r = Reader::new(payload);
    let class = r.u16()?;
    let method = r.u16()?;
    Ok(match (class, method) {
        (10, 11) => Method::StartOk,
        (10, 31) => {
            let _channel_max = r.u16()?;
            Method::TuneOk {
                frame_max: r.u32()?,
                heartbeat: r.u16()?,
            }
        }
        (10, 40) => Method::ConnectionOpen,
        (10, 50) => Method::ConnectionClose,
        (10, 51) => Method::ConnectionCloseOk,
        (20, 10) => Method::ChannelOpen,
        (20, 20) => Method::ChannelFlow {
            active: r.u8()? & 1 != 0,
        },
        (20, 40) => Method::ChannelClose,
        (20, 41) => Method::ChannelCloseOk,
        (40, 10) => {
            r.u16()?;
            let name = r.short_str()?;
            let kind = r.short_str()?;
            let bits = r.u8()?;
            Method::ExchangeDeclare {
                name,
                kind,
                passive: bits & 1 != 0,
                no_wait: bits & 16 != 0,
            }
        }
        (40, 20) => {
            r.u16()?;
            let name = r.short_str()?;
            Method::ExchangeDelete {
                name,
                no_wait: r.u8()? & 2 != 0,
            }
        }
        (50, 10) => {
            r.u16()?;
            let name = r.short_str()?;
            let bits = r.u8()?;
            Method::QueueDeclare(QueueDeclare {
                name,
                passive: bits & 1 != 0,
                durable: bits & 2 != 0,
                exclusive: bits & 4 != 0,
                auto_delete: bits & 8 != 0,
                no_wait: bits & 16 != 0,
                arguments: r.table()?,
            })
        }
        (50, 20) => {
            r.u16()?;
            let queue = r.short_str()?;
            let exchange = r.short_str()?;
            let key = r.short_str()?;
            Method::QueueBind {
                queue,
                exchange,
                key,
                no_wait: r.u8()? & 1 != 0,
            }
        }
        (50, 30) => {
            r.u16()?;
            let queue = r.short_str()?;
            Method::QueuePurge {
                queue,
                no_wait: r.u8()? & 1 != 0,
            }
        }
        (50, 40) => {
            r.u16()?;
            let queue = r.short_str()?;
            Method::QueueDelete {
                queue,
                no_wait: r.u8()? & 4 != 0,
            }
        }
        (50, 50) => {
            r.u16()?;
            let queue = r.short_str()?;
            let exchange = r.short_str()?;
            let key = r.short_str()?;
            Method::QueueUnbind {
                queue,
                exchange,
                key,
            }
        }
        (60, 10) => {
            let _size = r.u32()?;
            Method::Qos { prefetch: r.u16()? }
        }
        (60, 20) => {
            r.u16()?;
            let queue = r.short_str()?;
            let tag = r.short_str()?;
            let bits = r.u8()?;
            Method::Consume(Consume {
                queue,
                tag,
                no_ack: bits & 2 != 0,
                exclusive: bits & 4 != 0,
                no_wait: bits & 8 != 0,
            })
        }
        (60, 30) => {
            let tag = r.short_str()?;
            Method::Cancel {
                tag,
                no_wait: r.u8()? & 1 != 0,
            }
        }
        (60, 31) => Method::CancelOk,
        (60, 40) => {
            r.u16()?;
            let exchange = r.short_str()?;
            let key = r.short_str()?;
            Method::Publish {
                exchange,
                key,
                mandatory: r.u8()? & 1 != 0,
            }
        }
        (60, 70) => {
            r.u16()?;
            let queue = r.short_str()?;
            Method::Get {
                queue,
                no_ack: r.u8()? & 1 != 0,
            }
        }
        (60, 80) => Method::Ack {
            tag: r.u64()?,
            multiple: r.u8()? & 1 != 0,
        },
        (60, 90) => Method::Nack {
            tag: r.u64()?,
            multiple: false,
            requeue: r.u8()? & 1 != 0,
        },
        (60, 110) => Method::Recover,
        (60, 120) => {
            let tag = r.u64()?;
            let bits = r.u8()?;
            Method::Nack {
                tag,
                multiple: bits & 1 != 0,
                requeue: bits & 2 != 0,
            }
        }
        (85, 10) => Method::ConfirmSelect {
            no_wait: r.u8()? & 1 != 0,
        },
        (class, method) => Method::Unknown(class, method),
    })
}

/// A cursor over a frame payload; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.bytes.len() < n {
            return Err(FrameError::Malformed("truncated method frame"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        let b = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(b);
        Ok(u64::from_be_bytes(array))
    }

    fn short_str(&mut self) -> Result<String, FrameError> {
        let len = self.u8()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| FrameError::Malformed("short string not UTF-8"))
    }

    fn table(&mut self) -> Result<FieldTable, FrameError> {
        let start = self.bytes;
        self.skip_table(0).map_err(|_| BAD_TABLE)?;
        let len = start.len() - self.bytes.len();
        amqp_serde::from_bytes(&start[..len]).map_err(|_| BAD_TABLE)
    }

    /// Walks a field table without decoding it: amqp_serde panics on an
    /// unknown field type or an entry running past its table, and recurses
    /// without bound, so only tables walked here may reach it.
    fn skip_table(&mut self, depth: usize) -> Result<(), FrameError> {
        let len = self.u32()? as usize;
        let mut entries = Reader::new(self.take(len)?);
        while !entries.bytes.is_empty() {
            let name = entries.u8()? as usize;
            entries.take(name)?;
            entries.skip_value(depth)?;
        }
        Ok(())
    }

    fn skip_value(&mut self, depth: usize) -> Result<(), FrameError> {
        if depth > MAX_NESTING {
            return Err(BAD_TABLE);
        }
        let size = match self.u8()? {
            b'V' => 0,
            b't' | b'b' | b'B' => 1,
            b's' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'D' => 5,
            b'l' | b'd' | b'T' => 8,
            b'S' | b'x' => self.u32()? as usize,
            b'F' => return self.skip_table(depth + 1),
            b'A' => {
                let len = self.u32()? as usize;
                let mut items = Reader::new(self.take(len)?);
                while !items.bytes.is_empty() {
                    items.skip_value(depth + 1)?;
                }
                return Ok(());
            }
            _ => return Err(BAD_TABLE),
        };
        self.take(size).map(|_| ())
    }
}

const BAD_TABLE: FrameError = FrameError::Malformed("bad field table");

/// Tables nest deeper than this in no message the bus sends (`x-death` is
/// an array of tables); the bound keeps decoding off the end of the stack.
const MAX_NESTING: usize = 16;

/// Checks the only part of content properties amqp_serde can choke on: the
/// headers table, after the two short strings that may precede it.
fn check_properties(bytes: &[u8]) -> Result<(), FrameError> {
    let mut r = Reader::new(bytes);
    let flags = r.u16()?;
    for bit in [15, 14] {
        if flags & (1 << bit) != 0 {
            let len = r.u8()? as usize;
            r.take(len)?;
        }
    }
    if flags & (1 << 13) != 0 {
        r.skip_table(0).map_err(|_| BAD_TABLE)?;
    }
    Ok(())
}

/// Builds outgoing frames into one buffer, so that a delivery (method,
/// header and body) reaches the socket in one write.
#[derive(Default)]
pub(crate) struct FrameWriter {
    pub(crate) bytes: Vec<u8>,
}

/// The arguments of one outgoing method, in wire order.
pub(crate) enum Arg<'a> {
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    Short(&'a str),
    Long(&'a str),
    Table(&'a FieldTable),
}

impl FrameWriter {
    /// Appends a method frame.
    pub(crate) fn method(&mut self, channel: u16, class: u16, method: u16, args: &[Arg<'_>]) {
        let start = self.open(METHOD, channel);
        self.bytes.extend_from_slice(&class.to_be_bytes());
        self.bytes.extend_from_slice(&method.to_be_bytes());
        for arg in args {
            match arg {
                Arg::U8(v) => self.bytes.push(*v),
                Arg::U16(v) => self.bytes.extend_from_slice(&v.to_be_bytes()),
                Arg::U32(v) => self.bytes.extend_from_slice(&v.to_be_bytes()),
                Arg::U64(v) => self.bytes.extend_from_slice(&v.to_be_bytes()),
                Arg::Short(s) => {
                    // Names reaching here were accepted as short strings on
                    // the way in, so they fit; cut defensively all the same.
                    let s = &s.as_bytes()[..s.len().min(255)];
                    self.bytes.push(s.len() as u8);
                    self.bytes.extend_from_slice(s);
                }
                Arg::Long(s) => {
                    self.bytes
                        .extend_from_slice(&(s.len() as u32).to_be_bytes());
                    self.bytes.extend_from_slice(s.as_bytes());
                }
                Arg::Table(table) => {
                    // A table built by this broker always serializes.
                    let _ = amqp_serde::to_buffer(*table, &mut self.bytes);
                }
            }
        }
        self.close(start);
    }

    /// Appends a message's content header and body frames.
    pub(crate) fn content(
        &mut self,
        channel: u16,
        properties: &BasicProperties,
        body: &[u8],
        frame_max: u32,
    ) {
        let start = self.open(HEADER, channel);
        self.bytes.extend_from_slice(&60u16.to_be_bytes());
        self.bytes.extend_from_slice(&0u16.to_be_bytes());
        self.bytes
            .extend_from_slice(&(body.len() as u64).to_be_bytes());
        let _ = amqp_serde::to_buffer(properties, &mut self.bytes);
        self.close(start);
        // A frame's 8 bytes of framing count in frame_max.
        let chunk = (frame_max as usize).saturating_sub(8).max(1);
        for piece in body.chunks(chunk) {
            let start = self.open(BODY, channel);
            self.bytes.extend_from_slice(piece);
            self.close(start);
        }
    }

    /// Appends `connection.close` (on channel 0) or `channel.close` with
    /// this reply code and text.
    pub(crate) fn close_method(&mut self, channel: u16, code: u16, text: &str) {
        let (class, method) = if channel == 0 { (10, 50) } else { (20, 40) };
        let args = [Arg::U16(code), Arg::Short(text), Arg::U16(0), Arg::U16(0)];
        self.method(channel, class, method, &args);
    }

    /// Builds frames and queues them, as one write, for a connection's
    /// socket; a connection already gone drops them.
    pub(crate) fn send(outgoing: &UnboundedSender<Vec<u8>>, build: impl FnOnce(&mut FrameWriter)) {
        let mut writer = FrameWriter::default();
        build(&mut writer);
        let _ = outgoing.send(writer.bytes);
    }

    /// Appends a heartbeat frame.
    pub(crate) fn heartbeat(&mut self) {
        let start = self.open(HEARTBEAT, 0);
        self.close(start);
    }

    fn open(&mut self, kind: u8, channel: u16) -> usize {
        self.bytes.push(kind);
        self.bytes.extend_from_slice(&channel.to_be_bytes());
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&[0; 4]);
        start
    }

    fn close(&mut self, start: usize) {
        let size = (self.bytes.len() - start - 4) as u32;
        self.bytes[start..start + 4].copy_from_slice(&size.to_be_bytes());
        self.bytes.push(FRAME_END);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole frame around `payload`, as a client would send it.
    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![kind, 0, 1];
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes.push(FRAME_END);
        bytes
    }

    /// A content header whose properties carry only `headers`, a raw table.
    fn header_with(table: &[u8]) -> Vec<u8> {
        let mut payload = vec![0, 60, 0, 0];
        payload.extend_from_slice(&0u64.to_be_bytes());
        payload.extend_from_slice(&[1 << 5, 0]);
        payload.extend_from_slice(table);
        frame(HEADER, &payload)
    }

    /// A `queue.declare` whose arguments are `table`, raw.
    fn declare_with(table: &[u8]) -> Vec<u8> {
        let mut payload = vec![0, 50, 0, 10, 0, 0, 1, b'q', 2];
        payload.extend_from_slice(table);
        frame(METHOD, &payload)
    }

    fn table(entries: &[u8], declared: u32) -> Vec<u8> {
        let mut bytes = declared.to_be_bytes().to_vec();
        bytes.extend_from_slice(entries);
        bytes
    }

    async fn read(bytes: Vec<u8>) -> Result<Frame, FrameError> {
        read_frame(&mut bytes.as_slice(), 131_072).await
    }

    /// Tables a client can send that amqp_serde does not refuse cleanly: an
    /// unknown field type (it panics), an entry running past the table's
    /// length (a subtraction overflow), nesting deep enough to overflow the
    /// stack.
    fn malformed_tables() -> Vec<(&'static str, Vec<u8>)> {
        let unknown_type = [1, b'k', 0x01, 0];
        let overrun = [1, b'k', b'S', 0, 0, 0, 4, b'a', b'b', b'c', b'd'];
        let mut deep = Vec::new();
        for _ in 0..18_000 {
            deep = [&[1, b'k', b'F'][..], &table(&deep, deep.len() as u32)].concat();
        }
        let array_overrun = [1, b'k', b'A', 0, 0, 0, 1, b'S', 0, 0, 0, 1, b'z'];
        vec![
            ("unknown field type", table(&unknown_type, 4)),
            ("entry past the table's end", table(&overrun, 5)),
            (
                "array entry past the array's end",
                table(&array_overrun, 13),
            ),
            ("deep nesting", table(&deep, deep.len() as u32)),
        ]
    }

    #[tokio::test]
    async fn testkit_malformed_tables_are_a_frame_error_not_a_panic() {
        for (case, table) in malformed_tables() {
            for (place, frame) in [
                ("headers", header_with(&table)),
                ("arguments", declare_with(&table)),
            ] {
                let read = read(frame).await;
                assert!(
                    matches!(read, Err(FrameError::Malformed(_))),
                    "{case} in {place}: {:?}",
                    read.err()
                );
            }
        }
    }

    #[tokio::test]
    async fn testkit_well_formed_tables_are_read() {
        let mut entries = vec![1, b'a', b'S', 0, 0, 0, 2, b'h', b'i'];
        entries.extend_from_slice(&[1, b'n', b'l', 0, 0, 0, 0, 0, 0, 0, 7]);
        let nested = table(&[1, b'c', b't', 1], 4);
        entries.extend_from_slice(&[1, b'x', b'A']);
        entries.extend_from_slice(&((nested.len() + 1) as u32).to_be_bytes());
        entries.push(b'F');
        entries.extend_from_slice(&nested);
        let table = table(&entries, entries.len() as u32);
        match read(header_with(&table)).await {
            Ok(Frame::Header(_, _, properties)) => {
                let headers = properties.headers().expect("headers");
                assert_eq!(headers.as_ref().len(), 3);
            }
            _ => panic!("a well-formed header is read"),
        }
        match read(declare_with(&table)).await {
            Ok(Frame::Method(_, Method::QueueDeclare(declare))) => {
                assert_eq!(declare.arguments.as_ref().len(), 3);
            }
            _ => panic!("a well-formed declare is read"),
        }
    }

    #[test]
    fn testkit_body_frames_fit_the_smallest_frame_max() {
        let mut writer = FrameWriter::default();
        writer.content(1, &BasicProperties::default(), &[7; 10_000], 4096);
        let mut bytes = writer.bytes.as_slice();
        let mut body = 0;
        while !bytes.is_empty() {
            let size = u32::from_be_bytes([bytes[3], bytes[4], bytes[5], bytes[6]]) as usize;
            assert!(size + 8 <= 4096, "a frame of {} bytes", size + 8);
            if bytes[0] == BODY {
                body += size;
            }
            bytes = &bytes[size + 8..];
        }
        assert_eq!(body, 10_000);
    }
}
