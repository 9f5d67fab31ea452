//! The broker from the side: queue counts and consumers, dead-letter
//! set-ups, and the virtual host for programs with fixed names.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use amqprs::channel::{
    Channel, ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::Connection;
use bus_test_support::{Policy, QueueCleanup, Vhost, amqp_url};

use crate::process::WAIT;

/// A connection and a channel of the scenario's own.
pub(crate) struct Amqp {
    connection: Connection,
    channel: Channel,
}

impl Amqp {
    /// On the test broker.
    pub(crate) async fn open() -> Amqp {
        Amqp::open_at(&amqp_url()).await
    }

    /// On the broker (virtual host) at `url`.
    pub(crate) async fn open_at(url: &str) -> Amqp {
        let connection = bus_test_support::connect(url, "bus interop suite")
            .await
            .expect("connect");
        let channel = connection.open_channel(None).await.expect("channel");
        Amqp {
            connection,
            channel,
        }
    }

    /// `(ready messages, consumers)` of `queue`, or `None` if it does not
    /// exist (which closes the channel: a new one is opened).
    async fn probe(&mut self, queue: &str) -> Option<(u32, u32)> {
        let declared = self
            .channel
            .queue_declare(QueueDeclareArguments::new(queue).passive(true).finish())
            .await;
        match declared {
            Ok(Some((_, messages, consumers))) => Some((messages, consumers)),
            Ok(None) => None,
            Err(_) => {
                self.channel = self.connection.open_channel(None).await.expect("channel");
                None
            }
        }
    }

    /// Waits until `queue` exists and `test(ready messages, consumers)`.
    #[track_caller]
    pub(crate) fn wait_queue<'a>(
        &'a mut self,
        queue: &'a str,
        what: &'a str,
        test: impl Fn(u32, u32) -> bool + 'a,
    ) -> impl std::future::Future<Output = ()> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let deadline = Instant::now() + WAIT;
            loop {
                let seen = self.probe(queue).await;
                if seen.is_some_and(|(m, c)| test(m, c)) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "queue {queue} never had {what} within {WAIT:?} (last seen: {}; waited at {caller})",
                    seen.map_or("no such queue".into(), |(m, c)| format!(
                        "{m} ready messages, {c} consumers"
                    ))
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Waits until `queue` holds exactly `n` ready messages.
    #[track_caller]
    pub(crate) fn wait_messages<'a>(
        &'a mut self,
        queue: &'a str,
        n: u32,
    ) -> impl std::future::Future<Output = ()> + 'a {
        self.wait_queue(queue, "the expected messages", move |m, _| m == n)
    }

    /// Waits until `queue` has `n` consumers.
    #[track_caller]
    pub(crate) fn wait_consumers<'a>(
        &'a mut self,
        queue: &'a str,
        n: u32,
    ) -> impl std::future::Future<Output = ()> + 'a {
        self.wait_queue(queue, "the expected consumers", move |_, c| c == n)
    }

    pub(crate) async fn close(self) {
        let _ = self.channel.close().await;
        let _ = self.connection.close().await;
    }
}

/// A dead-letter set-up for the service `service`: a policy on its queues
/// naming an exchange `<service>-dlx`, and the queue `<service>-dead` bound
/// to it with `#`. The exchange is auto-delete, so it goes with the queue.
pub(crate) struct DeadLetters {
    pub(crate) queue: String,
    _policy: Policy,
    _cleanup: QueueCleanup,
}

impl DeadLetters {
    pub(crate) async fn set_up(service: &str) -> DeadLetters {
        let exchange = format!("{service}-dlx");
        let queue = format!("{service}-dead");
        let cleanup = QueueCleanup::new(
            &amqp_url(),
            [
                queue.clone(),
                bus_core::events_queue(service),
                bus_core::commands_queue(service),
            ],
        );
        let amqp = Amqp::open().await;
        amqp.channel
            .exchange_declare(
                ExchangeDeclareArguments::new(&exchange, "topic")
                    .auto_delete(true)
                    .finish(),
            )
            .await
            .expect("exchange.declare");
        amqp.channel
            .queue_declare(QueueDeclareArguments::durable_client_named(&queue))
            .await
            .expect("queue.declare");
        amqp.channel
            .queue_bind(QueueBindArguments::new(&queue, &exchange, "#"))
            .await
            .expect("queue.bind");
        amqp.close().await;
        let pattern = format!("^{service}\\.(events|commands)$");
        let definition = format!(r#"{{"dead-letter-exchange":"{exchange}"}}"#);
        let policy = tokio::task::spawn_blocking(move || {
            Policy::set(&pattern, &definition, "queues").expect("set the dead-letter policy")
        })
        .await
        .expect("join");
        DeadLetters {
            queue,
            _policy: policy,
            _cleanup: cleanup,
        }
    }
}

/// The virtual host shared by the scenarios that run programs with fixed
/// names: the `pong` and `ping` examples use the logical service `pong`,
/// and eventail's `send_command.py` always waits for its result on
/// `debug.return`, so two of them on one vhost would answer each other.
/// Created on first use, deleted by [`delete_fixed_names_vhost`].
static FIXED_NAMES: Mutex<Option<Vhost>> = Mutex::new(None);

/// Held by a scenario while it uses the fixed-names vhost: they take turns.
static FIXED_NAMES_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The right to use the fixed names, and the vhost's URL.
pub(crate) struct FixedNames {
    pub(crate) url: String,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// Waits for the turn of the calling scenario, then gives it the URL of the
/// fixed-names vhost.
pub(crate) async fn fixed_names() -> FixedNames {
    let turn = FIXED_NAMES_TURN.lock().await;
    let url = tokio::task::spawn_blocking(|| {
        let mut vhost = FIXED_NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if vhost.is_none() {
            *vhost = Some(Vhost::create("bus-interop").expect("create a vhost"));
        }
        vhost
            .as_ref()
            .map(|v| v.url().to_owned())
            .unwrap_or_default()
    })
    .await
    .expect("join");
    FixedNames { url, _turn: turn }
}

/// Deletes the fixed-names vhost, with everything left in it.
pub(crate) fn delete_fixed_names_vhost() {
    drop(FIXED_NAMES.lock().unwrap_or_else(|e| e.into_inner()).take());
}
