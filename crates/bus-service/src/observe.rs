//! An observable trace of the runtime's decisions, for tests and metrics.
//!
//! The trace makes the core invariant checkable from outside: a delivery is
//! never acked before every message its handler published is confirmed.

use std::fmt;
use std::sync::Arc;

/// One step of the publish → confirm → ack path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// A message went out on the confirm channel with sequence number `seq`.
    Published {
        /// The outbox id of the message, stable across republishes.
        id: u64,
        /// The broker's sequence number on the current channel.
        seq: u64,
    },
    /// The broker confirmed message `id`.
    Confirmed {
        /// The outbox id.
        id: u64,
    },
    /// The broker refused message `id`; it will be published again.
    BrokerNacked {
        /// The outbox id.
        id: u64,
    },
    /// A handler returned; `outputs` are the messages it published.
    HandlerFinished {
        /// The session the delivery belongs to.
        session: u64,
        /// Its delivery tag.
        delivery_tag: u64,
        /// Outbox ids of the messages published while handling it.
        outputs: Vec<u64>,
    },
    /// An ack went to the broker.
    Acked {
        /// The session (channel) it was sent on.
        session: u64,
        /// The delivery tag.
        delivery_tag: u64,
        /// Whether it acks every earlier unacked delivery too.
        multiple: bool,
    },
    /// A nack went to the broker.
    Nacked {
        /// The session (channel) it was sent on.
        session: u64,
        /// The delivery tag.
        delivery_tag: u64,
        /// Whether the broker puts the message back in its queue.
        requeue: bool,
    },
    /// A session started on a new connection.
    SessionStarted {
        /// Its number, from 1.
        session: u64,
    },
}

type ObserverFn = dyn Fn(&TraceEvent) + Send + Sync;

/// Where trace events go: nowhere, unless a test or a metrics exporter asked.
#[derive(Clone, Default)]
pub(crate) struct Observer(Option<Arc<ObserverFn>>);

impl Observer {
    pub(crate) fn new(f: Arc<ObserverFn>) -> Observer {
        Observer(Some(f))
    }

    pub(crate) fn emit(&self, event: TraceEvent) {
        if let Some(f) = &self.0 {
            f(&event);
        }
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(set)"
        } else {
            "Observer(none)"
        })
    }
}
