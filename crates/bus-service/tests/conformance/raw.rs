//! A raw AMQP 0-9-1 connection over a socket, for behaviours that need
//! frames amqprs never sends: methods on channels that are not open, a
//! `channel.close` crossing the broker's own.

use bus_core::BrokerUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::probe::WAIT;

const FRAME_END: u8 = 0xCE;
pub(crate) const METHOD: u8 = 1;
pub(crate) const HEADER: u8 = 2;
pub(crate) const BODY: u8 = 3;
const HEARTBEAT: u8 = 8;

/// One argument of an outgoing method, in wire order.
pub(crate) enum Arg<'a> {
    U8(u8),
    U16(u16),
    U32(u32),
    Short(&'a str),
    Long(&'a [u8]),
    EmptyTable,
}

/// A frame the broker sent.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) channel: u16,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// Class and method ids, for a method frame.
    pub(crate) fn method(&self) -> Option<(u16, u16)> {
        let p = &self.payload;
        (self.kind == METHOD && p.len() >= 4).then(|| {
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )
        })
    }

    /// The reply code of a `connection.close` or `channel.close`.
    pub(crate) fn reply_code(&self) -> Option<u16> {
        let p = &self.payload;
        matches!(self.method(), Some((10, 50) | (20, 40))).then(|| u16::from_be_bytes([p[4], p[5]]))
    }
}

/// A connection that has done the handshake, without heartbeats.
pub(crate) struct Raw {
    socket: TcpStream,
}

impl Raw {
    pub(crate) async fn open(url: &str) -> Raw {
        Raw::open_with_heartbeat(url, 0).await
    }

    /// Opens a connection that asks for heartbeats every `seconds` (and,
    /// unless the test sends them, will not send any).
    pub(crate) async fn open_with_heartbeat(url: &str, seconds: u16) -> Raw {
        let url: BrokerUrl = url.parse().expect("a valid broker URL");
        let socket = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .expect("connect");
        let mut raw = Raw { socket };
        raw.socket
            .write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .expect("protocol header");
        raw.expect(0, (10, 10)).await;
        let response = format!("\0{}\0{}", url.user, url.password);
        raw.method(
            0,
            (10, 11),
            &[
                Arg::EmptyTable,
                Arg::Short("PLAIN"),
                Arg::Long(response.as_bytes()),
                Arg::Short("en_US"),
            ],
        )
        .await;
        // The broker's channel and frame limits, accepted as they are.
        let tune = raw.expect(0, (10, 30)).await.payload;
        let channel_max = u16::from_be_bytes([tune[4], tune[5]]);
        let frame_max = u32::from_be_bytes([tune[6], tune[7], tune[8], tune[9]]);
        let tune_ok = [
            Arg::U16(channel_max),
            Arg::U32(frame_max),
            Arg::U16(seconds),
        ];
        raw.method(0, (10, 31), &tune_ok).await;
        raw.method(
            0,
            (10, 40),
            &[Arg::Short(&url.vhost), Arg::Short(""), Arg::U8(0)],
        )
        .await;
        raw.expect(0, (10, 41)).await;
        raw
    }

    pub(crate) async fn method(&mut self, channel: u16, id: (u16, u16), args: &[Arg<'_>]) {
        let mut payload = Vec::new();
        payload.extend_from_slice(&id.0.to_be_bytes());
        payload.extend_from_slice(&id.1.to_be_bytes());
        for arg in args {
            match arg {
                Arg::U8(v) => payload.push(*v),
                Arg::U16(v) => payload.extend_from_slice(&v.to_be_bytes()),
                Arg::U32(v) => payload.extend_from_slice(&v.to_be_bytes()),
                Arg::Short(s) => {
                    payload.push(s.len() as u8);
                    payload.extend_from_slice(s.as_bytes());
                }
                Arg::Long(b) => {
                    payload.extend_from_slice(&(b.len() as u32).to_be_bytes());
                    payload.extend_from_slice(b);
                }
                Arg::EmptyTable => payload.extend_from_slice(&0u32.to_be_bytes()),
            }
        }
        self.frame(METHOD, channel, &payload).await;
    }

    /// `basic.publish` with its content, `body` in one frame.
    pub(crate) async fn publish(&mut self, channel: u16, exchange: &str, key: &str, body: &[u8]) {
        let publish = [
            Arg::U16(0),
            Arg::Short(exchange),
            Arg::Short(key),
            Arg::U8(0),
        ];
        self.method(channel, (60, 40), &publish).await;
        let mut header = vec![0, 60, 0, 0];
        header.extend_from_slice(&(body.len() as u64).to_be_bytes());
        header.extend_from_slice(&[0, 0]);
        self.frame(HEADER, channel, &header).await;
        self.frame(BODY, channel, body).await;
    }

    pub(crate) async fn frame(&mut self, kind: u8, channel: u16, payload: &[u8]) {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&channel.to_be_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes.push(FRAME_END);
        self.socket.write_all(&bytes).await.expect("send a frame");
    }

    /// The next frame other than a heartbeat; `None` once the socket ends.
    pub(crate) async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(WAIT, async {
            loop {
                let mut head = [0u8; 7];
                self.socket.read_exact(&mut head).await.ok()?;
                let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
                let mut payload = vec![0u8; size as usize + 1];
                self.socket.read_exact(&mut payload).await.ok()?;
                payload.pop();
                if head[0] != HEARTBEAT {
                    return Some(Frame {
                        kind: head[0],
                        channel: u16::from_be_bytes([head[1], head[2]]),
                        payload,
                    });
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no frame from the broker within {WAIT:?}"))
    }

    /// The next frame, which must be method `id` on `channel`.
    pub(crate) async fn expect(&mut self, channel: u16, id: (u16, u16)) -> Frame {
        let frame = self.next().await.expect("a frame, not the end");
        assert_eq!(
            (frame.channel, frame.method()),
            (channel, Some(id)),
            "unexpected frame {frame:?}"
        );
        frame
    }
}
