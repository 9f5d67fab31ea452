//! Scenario 6: dead letters. Events that a Rust service dead-letters are
//! put back by eventail's `resurrect.py`; events that a Python service
//! dead-letters are put back by `bus resurrect`. In between, eventail's
//! `inspect_queue.py` and `bus inspect` show the same messages, and leave
//! them in place.
//!
//! Both services fail on every event that has not been dead-lettered yet
//! (no `x-death` header): retried once, then dead-lettered through a DLX
//! policy on their queues; a resurrected event carries `x-death` and is
//! handled.

use bus_core::Value;
use bus_service::{
    Context, HandlerError, HandlerResult, Message, Outcome, Service, ServiceBuilder,
};
use bus_test_support::{amqp_url, unique};
use serde_json::json;
use tokio::sync::mpsc;

use crate::broker::{Amqp, DeadLetters};
use crate::process::{WAIT, ndjson, payload_file, run_expecting};
use crate::services::{start, stop};
use crate::tools::{bus, eventail, python_service};

/// What both inspectors show of a dead letter: routing key, conversation
/// id, and the payload's `n`.
type Shown = (String, String, i64);

/// The messages `inspect_queue.py` printed: blocks ending with a line of
/// dashes, each starting with `[routing key]`, showing the properties
/// (headers included) and ending with the payload, pretty-printed.
fn shown_by_eventail(out: &str) -> Vec<Shown> {
    out.split("-----------")
        .filter_map(|block| {
            let key = block
                .lines()
                .find_map(|l| l.strip_prefix('[')?.strip_suffix(']'))?
                .to_owned();
            let conversation = block
                .split("'conversation_id': '")
                .nth(1)?
                .split('\'')
                .next()?
                .to_owned();
            let payload = block.lines().rev().find(|l| !l.trim().is_empty())?;
            let n = payload
                .strip_prefix("{'n': ")?
                .strip_suffix('}')?
                .parse()
                .ok()?;
            Some((key, conversation, n))
        })
        .collect()
}

/// The messages `bus --json inspect` printed.
fn shown_by_bus(out: &str) -> Vec<Shown> {
    ndjson(out)
        .iter()
        .map(|r| {
            (
                r["routing_key"].as_str().unwrap_or_default().to_owned(),
                r["conversation_id"].as_str().unwrap_or_default().to_owned(),
                r["payload"]["n"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// Runs both inspectors on `queue`, checks they show the same two
/// messages, and that they left them there. Returns what they showed.
async fn inspect_both(queue: &str, amqp: &mut Amqp) -> Vec<Shown> {
    let eventail_out = run_expecting(
        "inspect_queue.py",
        eventail("inspect_queue.py", &amqp_url(), &[queue]),
        0,
    )
    .await;
    let by_eventail = shown_by_eventail(&eventail_out.out);
    amqp.wait_messages(queue, 2).await;
    let bus_out = run_expecting("bus inspect", bus(&["--json", "inspect", queue]), 0).await;
    let by_bus = shown_by_bus(&bus_out.out);
    amqp.wait_messages(queue, 2).await;
    assert_eq!(
        by_bus, by_eventail,
        "bus inspect and inspect_queue.py disagree\n--- inspect_queue.py\n{}\n--- bus inspect\n{}",
        eventail_out.out, bus_out.out
    );
    assert_eq!(by_bus.len(), 2, "{}", bus_out.out);
    for record in ndjson(&bus_out.out) {
        assert_eq!(record["kind"], "event", "{record}");
        assert_eq!(
            record["headers"]["x-first-death-exchange"], "events",
            "{record}"
        );
        assert_eq!(
            record["headers"]["x-first-death-reason"], "rejected",
            "{record}"
        );
    }
    by_bus
}

/// Hands the events it finally handles to the scenario.
struct Flaky {
    tx: mpsc::UnboundedSender<(Value, String, Option<Value>)>,
}

impl Service for Flaky {
    async fn handle_event(&self, _ctx: Context, msg: Message) -> HandlerResult {
        let headers = &msg.meta().headers;
        if !headers.contains_key("x-death") {
            return Err(HandlerError::msg("poisoned"));
        }
        let first_death_queue = headers.get("x-first-death-queue").cloned();
        let _ = self.tx.send((
            msg.value()?,
            msg.conversation_id().to_owned(),
            first_death_queue,
        ));
        Ok(Outcome::Done)
    }
}

pub(crate) async fn rust_then_resurrect_py() {
    let name = unique("rs-dead");
    let dead = DeadLetters::set_up(&name).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let poison = format!("{name}.Poison");
    let builder = ServiceBuilder::new(&name)
        .url(&amqp_url())
        .event_keys([poison.clone()]);
    let service = start(builder, Flaky { tx }).await;

    for n in [1, 2] {
        let data = json!({"n": n}).to_string();
        let mut cmd = bus(&["publish", &poison, "--data", &data]);
        cmd.args(["--conversation-id", &format!("conv-dead-{n}")]);
        run_expecting("bus publish", cmd, 0).await;
    }
    let mut amqp = Amqp::open().await;
    amqp.wait_messages(&dead.queue, 2).await;
    let shown = inspect_both(&dead.queue, &mut amqp).await;
    assert_eq!(
        shown,
        [1, 2].map(|n| (poison.clone(), format!("conv-dead-{n}"), n))
    );

    let resurrected = run_expecting(
        "resurrect.py",
        eventail("resurrect.py", &amqp_url(), &[&dead.queue]),
        0,
    )
    .await;
    assert!(
        resurrected.out.contains("Done!"),
        "{}",
        resurrected.transcript()
    );
    for n in [1, 2] {
        let (payload, conversation, first_death_queue) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a resurrected event within the wait")
            .expect("the service is running");
        assert_eq!(payload, Value::from_json(json!({"n": n})));
        assert_eq!(conversation, format!("conv-dead-{n}"));
        assert_eq!(
            first_death_queue,
            Some(Value::from(bus_core::events_queue(&name)))
        );
    }
    amqp.wait_messages(&dead.queue, 0).await;
    amqp.close().await;
    stop(service).await;
}

pub(crate) async fn python_then_bus_resurrect() {
    let name = unique("py-dead");
    let dead = DeadLetters::set_up(&name).await;
    let mut service = python_service("flaky_service.py", &[&name]).await;
    let poison = format!("{name}.Poison");
    let dir = tempfile::tempdir().expect("tempdir");
    for n in [1, 2] {
        let file = payload_file(&dir, &format!("{n}.json"), &json!({"n": n}));
        let sent = run_expecting(
            "publish_event.py",
            eventail("publish_event.py", &amqp_url(), &[&poison, &file]),
            0,
        )
        .await;
        assert!(
            sent.out.contains("Message successfuly sent"),
            "{}",
            sent.transcript()
        );
    }
    let mut amqp = Amqp::open().await;
    amqp.wait_messages(&dead.queue, 2).await;
    let shown = inspect_both(&dead.queue, &mut amqp).await;
    // publish_event.py names its conversations `debug<time>`.
    for (i, (key, conversation, n)) in shown.iter().enumerate() {
        assert_eq!((key, *n), (&poison, i as i64 + 1));
        assert!(conversation.starts_with("debug"), "{conversation}");
    }

    let resurrected = run_expecting("bus resurrect", bus(&["resurrect", &dead.queue]), 0).await;
    assert!(
        resurrected.out.contains("moved 2, skipped 0, failed 0"),
        "{}",
        resurrected.transcript()
    );
    for (_, conversation, n) in &shown {
        let handled = service
            .wait_tagged("HANDLED", |h| h["payload"]["n"] == *n)
            .await;
        assert_eq!(handled["conversation_id"], conversation.as_str());
        assert_eq!(handled["first_death_queue"], bus_core::events_queue(&name));
    }
    amqp.wait_messages(&dead.queue, 0).await;
    amqp.close().await;
    service.stop_cleanly().await;
}
