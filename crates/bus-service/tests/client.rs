//! Behaviour 11, the request/reply client: a call returns the result's
//! status, payload and meta, or a timeout, or "unroutable" when no queue is
//! bound for the command; concurrent calls share one exclusive reply queue
//! and each gets its own answer by its correlation id.

mod probe;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus_service::bus_core::{Exchange, Status};
use bus_service::{CallError, CallOptions, Client, Context, HandlerError, Router, ServiceHandle};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use probe::{WAIT, bound_queues, builder, queue_row, start, stop};

#[derive(Serialize, Deserialize)]
struct Echo {
    text: String,
    fail: bool,
}

#[derive(Serialize, Deserialize, Debug)]
struct Echoed {
    echo: String,
    correlation_id: String,
}

/// What the service saw of each command: text → (correlation id, reply_to).
type Seen = Arc<Mutex<BTreeMap<String, (String, String)>>>;

/// The service under test: `Echo` answers success or error, `Ignore`
/// never answers.
fn echo_service(seen: &Seen) -> Router {
    let seen = Arc::clone(seen);
    Router::new()
        .command("Echo", move |ctx: Context, echo: Echo| {
            let seen = Arc::clone(&seen);
            async move {
                let correlation_id = ctx.correlation_id().unwrap_or_default().to_owned();
                let reply_to = ctx.reply_to().unwrap_or_default().to_owned();
                seen.lock()
                    .unwrap()
                    .insert(echo.text.clone(), (correlation_id.clone(), reply_to));
                let echoed = Echoed {
                    echo: echo.text,
                    correlation_id,
                };
                if echo.fail {
                    ctx.reply_error(&echoed).await?;
                } else {
                    ctx.reply_success(&echoed).await?;
                }
                Ok::<(), HandlerError>(())
            }
        })
        .command("Ignore", |_ctx: Context, _: Echo| async {})
}

/// A running echo service and a client connected to the broker.
struct Setup {
    name: String,
    service: ServiceHandle,
    client: Client,
    seen: Seen,
    _cleanup: QueueCleanup,
}

impl Setup {
    async fn new() -> Setup {
        let url = amqp_url();
        let name = unique("echo");
        let cleanup = QueueCleanup::new(&url, [format!("{name}.commands")]);
        let seen = Seen::default();
        let service = start(builder(&name), echo_service(&seen)).await;
        let client = Client::connect(builder(&unique("caller")), WAIT)
            .await
            .expect("client");
        Setup {
            name,
            service,
            client,
            seen,
            _cleanup: cleanup,
        }
    }

    fn command(&self, command: &str) -> String {
        format!("{}.{command}", self.name)
    }

    async fn stop(self) {
        self.client.close().await.expect("close client");
        stop(self.service).await;
    }
}

fn echo(text: &str, fail: bool) -> Echo {
    Echo {
        text: text.to_owned(),
        fail,
    }
}

#[tokio::test]
async fn a_call_returns_the_status_payload_and_meta_of_its_result() {
    let setup = Setup::new().await;
    let client = &setup.client;
    let conversation = unique("conversation");
    let options = CallOptions {
        timeout: WAIT,
        conversation_id: Some(conversation.clone()),
    };
    let reply = client
        .call_with(&setup.command("Echo"), &echo("hello", false), options)
        .await
        .expect("call");
    assert_eq!(reply.status, Status::Success);
    let echoed: Echoed = reply.payload().expect("payload");
    assert_eq!(echoed.echo, "hello");
    assert_eq!(reply.conversation_id, conversation);
    let (correlation_id, reply_to) = setup.seen.lock().unwrap()["hello"].clone();
    assert!(!correlation_id.is_empty());
    assert_eq!(reply.correlation_id, correlation_id);
    assert_eq!(echoed.correlation_id, correlation_id);
    assert_eq!(reply_to, client.reply_to());
    assert_eq!(reply.meta.exchange, Exchange::Commands.name());
    assert_eq!(reply.meta.routing_key, client.reply_to());
    assert!(!reply.meta.redelivered);

    let reply = client
        .call(&setup.command("Echo"), &echo("oops", true), WAIT)
        .await
        .expect("call");
    assert_eq!(
        reply.status,
        Status::Error,
        "an error result is a reply too"
    );
    assert_eq!(reply.payload::<Echoed>().expect("payload").echo, "oops");
    assert_ne!(reply.conversation_id, conversation, "a fresh conversation");
    setup.stop().await;
}

#[tokio::test]
async fn a_call_nobody_answers_times_out() {
    let setup = Setup::new().await;
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let outcome = setup
        .client
        .call(&setup.command("Ignore"), &echo("silence", false), timeout)
        .await;
    let waited = started.elapsed();
    match outcome {
        Err(CallError::TimedOut {
            command,
            timeout: t,
        }) => {
            assert_eq!(command, setup.command("Ignore"));
            assert_eq!(t, timeout);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(waited >= timeout, "gave up after {waited:?}");
    // The client still works after a timeout.
    let reply = setup
        .client
        .call(&setup.command("Echo"), &echo("after", false), WAIT)
        .await
        .expect("call after a timeout");
    assert_eq!(reply.payload::<Echoed>().expect("payload").echo, "after");
    setup.stop().await;
}

#[tokio::test]
async fn a_command_no_queue_is_bound_for_is_unroutable() {
    let client = Client::connect(builder(&unique("caller")), WAIT)
        .await
        .expect("client");
    let command = format!("{}.Nothing", unique("nobody"));
    // With this timeout, only the broker's return can end the call early.
    let outcome = client
        .call(&command, &echo("lost", false), Duration::from_secs(60))
        .await;
    match outcome {
        Err(CallError::Unroutable { command: c }) => assert_eq!(c, command),
        other => panic!("expected unroutable, got {other:?}"),
    }
    client.close().await.expect("close");
}

#[tokio::test]
async fn concurrent_calls_share_one_reply_queue_and_each_gets_its_own_answer() {
    const CALLS: usize = 100;
    let setup = Setup::new().await;
    let (client, command) = (&setup.client, &setup.command("Echo"));
    let texts: Vec<String> = (0..CALLS).map(|n| format!("call-{n}")).collect();
    let calls = texts
        .iter()
        .map(|text| async move { client.call(command, &echo(text, false), WAIT).await });
    let replies = tokio::time::timeout(WAIT * 2, join_all(calls))
        .await
        .expect("every call returns");

    let seen = setup.seen.lock().unwrap().clone();
    let mut correlation_ids = BTreeSet::new();
    for (text, reply) in texts.iter().zip(replies) {
        let reply = reply.unwrap_or_else(|e| panic!("{text}: {e}"));
        let echoed: Echoed = reply.payload().expect("payload");
        assert_eq!(&echoed.echo, text, "each call gets its own answer");
        assert_eq!(reply.correlation_id, seen[text].0);
        correlation_ids.insert(reply.correlation_id);
    }
    assert_eq!(correlation_ids.len(), CALLS, "unique correlation ids");
    let reply_tos: BTreeSet<&str> = seen.values().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        reply_tos,
        BTreeSet::from([client.reply_to()]),
        "one reply key for every call"
    );
    let [queues] = bound_queues(&[(Exchange::Commands.name(), client.reply_to())])
        .try_into()
        .expect("one binding asked");
    let [queue] = queues.as_slice() else {
        panic!("one queue behind the reply key: {queues:?}");
    };
    let exclusive = queue_row(queue, &["exclusive"]).expect("the reply queue")["exclusive"].clone();
    assert_eq!(exclusive, true, "the reply queue is exclusive");
    setup.stop().await;
}
