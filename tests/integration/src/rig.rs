//! What every fault test starts from: unique names, a collector for the
//! results, a sender of commands, a side connection, and the cleanup of
//! the queues they leave.

use std::time::Duration;

use bus_service::{ServiceBuilder, ServiceHandle};
use bus_test_support::{QueueCleanup, rabbitmqctl, unique};

use crate::broker::Side;
use crate::collector::Collector;
use crate::echo::{Echo, Work, work_key};
use crate::sender::Sender;
use crate::states::{StateLog, wait_ready};
use crate::trace::Trace;

/// How long the results a fault waits for may take.
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// The parts of a fault test around the service under test.
#[derive(Debug)]
pub struct Rig {
    /// The broker URL.
    pub url: String,
    /// The name of the echo service under test.
    pub echo: String,
    /// Receives the results.
    pub collector: Collector,
    /// Sends the commands.
    pub sender: Sender,
    /// Looks at the broker from the side.
    pub side: Side,
    /// Deletes the durable queues at the end, even on a panic.
    pub cleanup: QueueCleanup,
}

impl Rig {
    /// Starts the collector and the sender for an echo service named
    /// after `prefix`, and declares the echo's queue (so commands sent
    /// before the echo starts wait there).
    pub async fn new(url: &str, prefix: &str) -> Rig {
        crate::init_tracing();
        let echo = unique(prefix);
        let collector = Collector::start(url, &unique(&format!("{prefix}-results"))).await;
        let cleanup = QueueCleanup::new(url, [bus_core::commands_queue(&echo), collector.queue()]);
        let sender = Sender::start(
            url,
            &unique(&format!("{prefix}-sender")),
            &echo,
            &collector.reply_to,
        )
        .await;
        let side = Side::open(url, &unique(&format!("{prefix}-side"))).await;
        Rig {
            url: url.to_owned(),
            echo,
            collector,
            sender,
            side,
            cleanup,
        }
    }

    /// A builder for the echo service under test, on the rig's broker.
    pub fn echo_builder(&self) -> ServiceBuilder {
        ServiceBuilder::new(&self.echo)
            .url(&self.url)
            .command_keys([work_key(&self.echo)])
    }

    /// Starts `echo` with `builder`, waits until it is ready, and
    /// follows its states from then on.
    pub async fn start_echo(
        &self,
        builder: ServiceBuilder,
        echo: Echo,
    ) -> (ServiceHandle, StateLog) {
        let handle = builder.start(echo).expect("start echo");
        wait_ready(&handle.health(), "echo").await;
        let states = StateLog::follow(&handle.health());
        (handle, states)
    }

    /// Starts an echo whose commands take 5 ms, with prefetch 10 and its
    /// runtime trace recorded: the service of the stream-and-fault tests.
    pub async fn start_traced_echo(&self) -> (ServiceHandle, StateLog, Trace) {
        let trace = Trace::default();
        let builder = trace.attach(self.echo_builder().prefetch(10));
        let (echo, states) = self
            .start_echo(builder, Echo::taking(Duration::from_millis(5)))
            .await;
        (echo, states, trace)
    }

    /// Sends `work(id)` for each id of `0..n`, `gap` apart, and meanwhile
    /// runs `fault` once `after` results have arrived; returns what
    /// `fault` returns.
    pub async fn stream_with_fault<T>(
        &self,
        n: u64,
        gap: Duration,
        work: impl Fn(u64) -> Work,
        after: u64,
        fault: impl Future<Output = T>,
    ) -> T {
        let stream = self.sender.send_each(0..n, gap, work);
        let tally = &self.collector.tally;
        let inject = async {
            assert!(
                tally.wait_received(after, STREAM_TIMEOUT).await,
                "{after} results before the fault"
            );
            fault.await
        };
        let ((), out) = tokio::join!(stream, inject);
        out
    }

    /// The echo service's queue.
    pub fn echo_queue(&self) -> String {
        bus_core::commands_queue(&self.echo)
    }

    /// Stops the collector and the sender, and closes the side connection.
    pub async fn stop(self) {
        self.sender.stop().await;
        self.collector.stop().await;
        self.side.close().await;
    }
}

/// Closes, as an operator would, every connection of this process that
/// the service `service` opened, found by its client-provided name
/// `<service>@<hostname>:<pid>`. Returns how many were closed.
pub async fn close_connections_of(service: &str) -> usize {
    let prefix = format!("{service}@");
    let suffix = format!(":{}", std::process::id());
    tokio::task::spawn_blocking(move || {
        let connections = rabbitmqctl::list_connections_with_names().expect("list connections");
        let mut closed = 0;
        for (pid, name) in connections {
            if name.starts_with(&prefix) && name.ends_with(&suffix) {
                rabbitmqctl::close_connection(&pid, "fault injected by a test")
                    .expect("close connection");
                closed += 1;
            }
        }
        closed
    })
    .await
    .expect("rabbitmqctl task")
}
