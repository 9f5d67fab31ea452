//! Logs on the bus: GELF records on the `logs` exchange, sent on their own
//! channel without confirms, as eventail does; plus a `tracing` layer that
//! forwards a service's tracing events there.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use amqprs::BasicProperties;
use amqprs::channel::{BasicPublishArguments, Channel};
use bus_core::{Exchange, GelfRecord, LogLevel, LogSource};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context as LayerContext;

use crate::error::LogError;

/// Records kept while the bus is unreachable; older ones are dropped.
const OFFLINE_BUFFER: usize = 1000;
/// Records waiting for the log task before new ones are dropped.
const QUEUE_CAPACITY: usize = 4096;
/// How long one record may wait for room on the connection.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The machine's host name, as in `host` of log records.
pub(crate) fn hostname() -> &'static str {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    HOSTNAME.get_or_init(|| gethostname::gethostname().to_string_lossy().into_owned())
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

enum Item {
    Record(Box<GelfRecord>),
    Flush(oneshot::Sender<()>),
}

/// Publishes GELF records on the `logs` exchange. Cheap to clone; logging
/// never waits for the broker.
#[derive(Clone)]
pub struct BusLogger {
    source: Arc<LogSource>,
    tx: mpsc::Sender<Item>,
}

impl std::fmt::Debug for BusLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusLogger")
            .field("service", &self.source.service)
            .finish()
    }
}

impl BusLogger {
    /// A logger for `service` and the task that publishes its records on
    /// whatever log channel `channels` currently holds.
    pub(crate) fn start(service: &str, channels: watch::Receiver<Option<Channel>>) -> BusLogger {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run_log_task(rx, channels));
        BusLogger {
            source: Arc::new(LogSource {
                service: service.to_owned(),
                hostname: hostname().to_owned(),
                pid: std::process::id(),
            }),
            tx,
        }
    }

    /// Logs on the bus, like eventail's `Service.log`: `level`, a short
    /// message, a full message, the conversation id, and additional fields
    /// (prefixed with `_` unless they are; `id` and `_id` are refused).
    pub fn log<K: AsRef<str>>(
        &self,
        level: LogLevel,
        short: &str,
        full: &str,
        conversation_id: &str,
        additional_fields: impl IntoIterator<Item = (K, serde_json::Value)>,
    ) -> Result<(), LogError> {
        let mut record = GelfRecord::new(&self.source, level, short, full, conversation_id, now());
        for (key, value) in additional_fields {
            record.add_field(key.as_ref(), value)?;
        }
        self.send(record);
        Ok(())
    }

    /// Logs a record with no additional fields.
    pub(crate) fn simple(&self, level: LogLevel, short: &str, full: &str, conversation_id: &str) {
        let record = GelfRecord::new(&self.source, level, short, full, conversation_id, now());
        self.send(record);
    }

    fn send(&self, record: GelfRecord) {
        if self.tx.try_send(Item::Record(Box::new(record))).is_err() {
            tracing::debug!("log queue full; a bus log record was dropped");
        }
    }

    /// Waits until every record logged so far was handed to the broker (or
    /// buffered, when the bus is unreachable).
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Item::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn run_log_task(
    mut rx: mpsc::Receiver<Item>,
    mut channels: watch::Receiver<Option<Channel>>,
) {
    let mut offline: VecDeque<GelfRecord> = VecDeque::new();
    let mut dropped = 0usize;
    // Set when a publish on the current channel failed: records wait in
    // the buffer for the next channel instead of failing one by one.
    let mut broken = false;
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                None => return,
                Some(Item::Flush(done)) => { let _ = done.send(()); }
                Some(Item::Record(record)) => {
                    let record = *record;
                    let channel = channels.borrow().clone().filter(|_| !broken);
                    let sent = match &channel {
                        Some(ch) => publish(ch, &record).await,
                        None => false,
                    };
                    broken |= channel.is_some() && !sent;
                    if !sent {
                        if offline.len() == OFFLINE_BUFFER {
                            offline.pop_front();
                            dropped += 1;
                        }
                        offline.push_back(record);
                    }
                }
            },
            changed = channels.changed() => {
                if changed.is_err() {
                    return;
                }
                let channel = channels.borrow_and_update().clone();
                broken = false;
                if let Some(ch) = channel {
                    if dropped > 0 {
                        tracing::warn!(dropped, "bus log records dropped while the bus was unreachable");
                        dropped = 0;
                    }
                    while let Some(record) = offline.pop_front() {
                        if !publish(&ch, &record).await {
                            offline.push_front(record);
                            broken = true;
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// No properties at all, not mandatory, no confirms: what eventail sends.
///
/// The wait for room in amqprs's outgoing queue is bounded: on a connection
/// the broker stopped reading, it would never end, and logging would stop
/// for good. A publish that gave up sent nothing.
async fn publish(channel: &Channel, record: &GelfRecord) -> bool {
    let args = BasicPublishArguments::new(Exchange::Logs.name(), &record.routing_key());
    let publish = channel.basic_publish(BasicProperties::default(), record.to_bytes(), args);
    matches!(
        tokio::time::timeout(PUBLISH_TIMEOUT, publish).await,
        Ok(Ok(()))
    )
}

/// A `tracing` layer that forwards events at or above a level to the bus,
/// so a service has one logging system, not two.
///
/// Create it before the subscriber, install it, then hand it to the service:
///
/// ```no_run
/// use bus_service::{BusLogLayer, ServiceBuilder};
/// use tracing_subscriber::prelude::*;
///
/// let bus_layer = BusLogLayer::new(tracing::Level::WARN);
/// tracing_subscriber::registry()
///     .with(tracing_subscriber::fmt::layer())
///     .with(bus_layer.clone())
///     .init();
/// let builder = ServiceBuilder::new("pong").forward_tracing(&bus_layer);
/// ```
#[derive(Clone)]
pub struct BusLogLayer {
    level: tracing::Level,
    logger: Arc<RwLock<Option<BusLogger>>>,
}

impl std::fmt::Debug for BusLogLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusLogLayer")
            .field("level", &self.level)
            .finish()
    }
}

impl BusLogLayer {
    /// Forwards events at `level` or worse (WARN is the usual choice).
    pub fn new(level: tracing::Level) -> BusLogLayer {
        BusLogLayer {
            level,
            logger: Arc::new(RwLock::new(None)),
        }
    }

    /// The level a layer forwards from when none is given: WARN.
    pub const DEFAULT_LEVEL: tracing::Level = tracing::Level::WARN;

    pub(crate) fn connect(&self, logger: BusLogger) {
        if let Ok(mut slot) = self.logger.write() {
            *slot = Some(logger);
        }
    }
}

impl Default for BusLogLayer {
    /// Forwards WARN and worse.
    fn default() -> BusLogLayer {
        BusLogLayer::new(BusLogLayer::DEFAULT_LEVEL)
    }
}

thread_local! {
    static FORWARDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for BusLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: LayerContext<'_, S>) {
        if *event.metadata().level() > self.level || FORWARDING.with(|f| f.get()) {
            return;
        }
        let Ok(slot) = self.logger.read() else { return };
        let Some(logger) = slot.as_ref() else { return };
        FORWARDING.with(|f| f.set(true));
        let mut fields = FieldCollector::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warning,
            tracing::Level::INFO => LogLevel::Info,
            _ => LogLevel::Debug,
        };
        let mut extra = fields.extra;
        extra.push(("target".to_owned(), event.metadata().target().into()));
        // A field GELF refuses (`id`) is renamed rather than lost.
        let extra = extra.into_iter().map(|(k, v)| match k.as_str() {
            "id" | "_id" => (format!("{k}_"), v),
            _ => (k, v),
        });
        let _ = logger.log(
            level,
            &fields.message,
            &fields.full,
            &fields.conversation_id,
            extra,
        );
        FORWARDING.with(|f| f.set(false));
    }
}

#[derive(Default)]
struct FieldCollector {
    message: String,
    full: String,
    conversation_id: String,
    extra: Vec<(String, serde_json::Value)>,
}

impl FieldCollector {
    fn add(&mut self, field: &Field, value: serde_json::Value, text: impl FnOnce() -> String) {
        match field.name() {
            "message" => self.message = text(),
            "conversation_id" => self.conversation_id = text(),
            name => {
                let _ = write!(self.full, "{name}={} ", text());
                self.extra.push((name.to_owned(), value));
            }
        }
    }
}

impl Visit for FieldCollector {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.add(field, text.clone().into(), || text);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.into(), || value.to_owned());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, value.into(), || value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field, value.into(), || value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, value.into(), || value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(field, value.into(), || value.to_string());
    }
}
