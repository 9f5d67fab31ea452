//! The test kit's own tests: the harness and the faults it injects, on the
//! in-memory bus, with no broker. Every test name contains `testkit`. The
//! behaviours shared with RabbitMQ are in `conformance.rs`.
#![cfg(feature = "testing")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bus_service::bus_core::{Exchange, Status};
use bus_service::testing::{Failure, KitError, MemoryBus};
use bus_service::{CallError, Context, HandlerError, Router, ServiceState};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

const WAIT: Duration = Duration::from_secs(10);

/// Holds handlers at a point until the test opens it, and tells the test
/// when one got there.
#[derive(Clone)]
struct Gate {
    open: Arc<Notify>,
    arrived: mpsc::UnboundedSender<()>,
}

impl Gate {
    fn new() -> (Gate, mpsc::UnboundedReceiver<()>) {
        let (arrived, arrivals) = mpsc::unbounded_channel();
        let gate = Gate {
            open: Arc::new(Notify::new()),
            arrived,
        };
        (gate, arrivals)
    }

    /// In a handler: report the arrival, then wait for the gate to open.
    async fn pass(&self) {
        let _ = self.arrived.send(());
        self.open.notified().await;
    }

    fn open(&self) {
        self.open.notify_one();
    }
}

fn doubler() -> Router {
    Router::new().command("Double", |ctx: Context, n: i64| async move {
        ctx.reply_success(&(n * 2)).await?;
        Ok::<(), HandlerError>(())
    })
}

#[tokio::test]
async fn testkit_command_round_trip_is_recorded() {
    let bus = MemoryBus::start().await.unwrap();
    let service = bus
        .start_service(bus.service("calc"), doubler())
        .await
        .unwrap();
    let reply = bus.send_command("calc.Double", &21, WAIT).await.unwrap();
    assert_eq!(reply.status, Status::Success);
    assert_eq!(reply.payload::<i64>().unwrap(), 42);
    bus.wait_idle(WAIT).await.unwrap();

    let commands = bus.commands();
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].routing_key, "calc.Double");
    assert_eq!(commands[0].payload::<i64>().unwrap(), 21);
    let results = bus.results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].header_text("status"), Some("success"));
    assert_eq!(
        results[0].properties.correlation_id,
        Some(reply.correlation_id.clone())
    );
    assert_eq!(
        results[0].header_text("conversation_id"),
        Some(reply.conversation_id.as_str())
    );
    service.stop().await.unwrap();
}

#[tokio::test]
async fn testkit_unroutable_command_fails_at_once() {
    let bus = MemoryBus::start().await.unwrap();
    let sent = bus.send_command("nobody.Listens", &1, WAIT).await;
    assert!(
        matches!(sent, Err(KitError::Call(CallError::Unroutable { .. }))),
        "{sent:?}"
    );
}

#[tokio::test]
async fn testkit_wait_idle_waits_for_a_handler_to_finish() {
    let bus = MemoryBus::start().await.unwrap();
    let (gate, mut arrivals) = Gate::new();
    let held = gate.clone();
    let router = Router::new().event("job.#", move |_ctx: Context, _job: Value| {
        let gate = held.clone();
        async move {
            gate.pass().await;
            Ok::<(), HandlerError>(())
        }
    });
    let worker = bus
        .start_service(bus.service("worker"), router)
        .await
        .unwrap();
    bus.publish_event("job.start", &json!({"n": 1}))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, arrivals.recv()).await.unwrap();

    let held = bus.wait_idle(Duration::from_millis(300)).await;
    assert!(held.is_err(), "a delivery held by its handler is not idle");
    gate.open();
    bus.wait_idle(WAIT)
        .await
        .expect("idle once the handler returned");
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn testkit_a_nacked_publish_is_published_again() {
    let bus = MemoryBus::start().await.unwrap();
    let (gate, mut arrivals) = Gate::new();
    let held = gate.clone();
    let router = Router::new().event("work.start", move |ctx: Context, n: i64| {
        let gate = held.clone();
        async move {
            gate.pass().await;
            ctx.publish_event("work.done", &n, ctx.conversation_id())
                .await?;
            Ok::<(), HandlerError>(())
        }
    });
    let service = bus
        .start_service(bus.service("nacked"), router)
        .await
        .unwrap();
    bus.publish_event("work.start", &7).await.unwrap();
    tokio::time::timeout(WAIT, arrivals.recv()).await.unwrap();
    bus.inject(Failure::NackPublishes(1));
    gate.open();
    bus.wait_idle(WAIT)
        .await
        .expect("the delivery is acked in the end");
    // The nacked copy, and the one published again.
    let done: Vec<i64> = bus
        .published_on(Exchange::Events)
        .iter()
        .filter(|p| p.routing_key == "work.done")
        .map(|p| p.payload().unwrap())
        .collect();
    assert_eq!(done, [7, 7]);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn testkit_closed_connections_are_reopened_and_unacked_deliveries_redelivered() {
    let bus = MemoryBus::start().await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (seen, mut seen_rx) = mpsc::unbounded_channel();
    let counter = Arc::clone(&calls);
    let router = Router::new().event("slow.#", move |ctx: Context, _job: Value| {
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        let redelivered = ctx.meta().is_some_and(|meta| meta.redelivered);
        let _ = seen.send(redelivered);
        async move {
            if first {
                // Held until the connection is gone.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Ok::<(), HandlerError>(())
        }
    });
    let service = bus
        .start_service(bus.service("slow"), router)
        .await
        .unwrap();
    bus.publish_event("slow.job", &json!({})).await.unwrap();
    let first = tokio::time::timeout(WAIT, seen_rx.recv()).await.unwrap();
    assert_eq!(first, Some(false));

    let mut states = service.health().subscribe();
    bus.inject(Failure::CloseConnections);
    tokio::time::timeout(WAIT, states.wait_for(|s| *s != ServiceState::Ready))
        .await
        .unwrap()
        .unwrap();
    let again = tokio::time::timeout(WAIT, seen_rx.recv())
        .await
        .expect("redelivered after the reconnection");
    assert_eq!(
        again,
        Some(true),
        "the second delivery carries the redelivered flag"
    );
    bus.wait_idle(WAIT).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn testkit_dropped_connections_and_deleted_queues_are_recovered() {
    let bus = MemoryBus::start().await.unwrap();
    let service = bus
        .start_service(bus.service("sturdy"), doubler())
        .await
        .unwrap();
    assert_eq!(
        bus.send_command("sturdy.Double", &1, WAIT)
            .await
            .unwrap()
            .payload::<i64>()
            .unwrap(),
        2
    );

    let mut states = service.health().subscribe();
    bus.inject(Failure::DeleteQueue("sturdy.commands".into()));
    tokio::time::timeout(WAIT, states.wait_for(|s| *s != ServiceState::Ready))
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, states.wait_for(|s| *s == ServiceState::Ready))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bus.queue_depth("sturdy.commands"),
        Some(0),
        "declared again"
    );

    bus.inject(Failure::DropConnections);
    tokio::time::timeout(WAIT, states.wait_for(|s| *s != ServiceState::Ready))
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, states.wait_for(|s| *s == ServiceState::Ready))
        .await
        .unwrap()
        .unwrap();
    // The harness's client reconnects too; its first call may race that.
    let mut answer = None;
    for _ in 0..50 {
        if let Ok(reply) = bus
            .send_command("sturdy.Double", &4, Duration::from_secs(1))
            .await
        {
            answer = Some(reply.payload::<i64>().unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer, Some(8));
    service.stop().await.unwrap();
}

#[tokio::test]
async fn testkit_rejected_messages_are_dead_lettered_with_x_death() {
    let bus = MemoryBus::start().await.unwrap();
    bus.dead_letter("fragile.events", "dead-letters");
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let router = Router::new().event("boom", move |_ctx: Context, _v: Value| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { Err::<(), HandlerError>(HandlerError::msg("always fails")) }
    });
    let service = bus
        .start_service(bus.service("fragile").event_keys(["boom"]), router)
        .await
        .unwrap();
    bus.publish_event("boom", &json!({"x": 1})).await.unwrap();
    bus.wait_idle(WAIT).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "handled, redelivered once, then dead-lettered"
    );
    let dead = bus.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].queue, "fragile.events");
    let death = match dead[0].message.header("x-death") {
        Some(bus_service::bus_core::Value::Array(entries)) => entries[0].clone(),
        other => panic!("x-death: {other:?}"),
    };
    assert_eq!(
        death.get("queue").and_then(|v| v.as_str()),
        Some("fragile.events")
    );
    assert_eq!(
        death.get("reason").and_then(|v| v.as_str()),
        Some("rejected")
    );
    service.stop().await.unwrap();
}

#[tokio::test]
async fn testkit_a_client_that_is_not_amqp_is_told_the_protocol() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bus = MemoryBus::start().await.unwrap();
    let address = bus
        .url()
        .trim_start_matches("amqp://guest:guest@")
        .trim_end_matches("/%2f")
        .to_owned();
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, b"AMQP\x00\x00\x09\x01");
}

/// Reports the reply code of the `connection.close` the broker sends.
struct CloseCode(mpsc::UnboundedSender<u16>);

#[async_trait::async_trait]
impl amqprs::callbacks::ConnectionCallback for CloseCode {
    async fn close(
        &mut self,
        _connection: &amqprs::connection::Connection,
        close: amqprs::Close,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(close.reply_code());
        Ok(())
    }
    async fn blocked(&mut self, _connection: &amqprs::connection::Connection, _reason: String) {}
    async fn unblocked(&mut self, _connection: &amqprs::connection::Connection) {}
    async fn secret_updated(&mut self, _connection: &amqprs::connection::Connection) {}
}

#[tokio::test]
async fn testkit_closed_connections_are_told_connection_forced() {
    let bus = MemoryBus::start().await.unwrap();
    // The close frame once raced the socket's shutdown: try it often.
    for attempt in 0..20 {
        let connection = bus_test_support::connect(bus.url(), "closed")
            .await
            .unwrap();
        let (codes, mut code) = mpsc::unbounded_channel();
        connection
            .register_callback(CloseCode(codes))
            .await
            .unwrap();
        bus.inject(Failure::CloseConnections);
        let code = tokio::time::timeout(Duration::from_secs(2), code.recv()).await;
        assert_eq!(code.ok().flatten(), Some(320), "attempt {attempt}");
    }
}
