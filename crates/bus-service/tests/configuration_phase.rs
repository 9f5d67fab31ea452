//! Behaviour 5 of the runtime, against the real broker: the configuration
//! phase. With configuration keys, a service consumes only its
//! configuration queue, calls `on_unconfigured`, and consumes its events
//! and commands only once a configuration handler reports "configured";
//! then it calls `on_ready`, and keeps consuming configurations. Without
//! configuration keys, it calls `on_ready` at once.

mod probe;

use std::time::Duration;

use bus_core::{Value, commands_queue, events_queue};
use bus_service::{Context, HandlerError, HandlerResult, Message, Outcome, Service, ServiceState};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use probe::{
    Probe, WAIT, builder, queue_row, start, start_in_state, stop, text, wait_for_queue_row,
};
use tokio::sync::mpsc;

/// What the service went through, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Unconfigured,
    /// A configuration's name and whether it configured the service.
    Configured(String, bool),
    Ready,
    Command,
    Event,
}

struct Configurable {
    svc: String,
    steps: mpsc::UnboundedSender<Step>,
}

impl Service for Configurable {
    async fn on_unconfigured(&self, ctx: Context) {
        let _ = self.steps.send(Step::Unconfigured);
        let request = Value::map([("service", Value::from(self.svc.as_str()))]);
        ctx.publish_event(&format!("{}.ConfigRequest", self.svc), &request, "")
            .await
            .expect("request published");
    }

    async fn handle_config(&self, _ctx: Context, msg: Message) -> Result<bool, HandlerError> {
        let payload = msg.value()?;
        let done = matches!(payload.get("done"), Some(Value::Bool(true)));
        let name = text(&payload, "name").to_owned();
        let _ = self.steps.send(Step::Configured(name, done));
        Ok(done)
    }

    async fn on_ready(&self, _ctx: Context) {
        let _ = self.steps.send(Step::Ready);
    }

    async fn handle_command(&self, ctx: Context, _msg: Message) -> HandlerResult {
        let _ = self.steps.send(Step::Command);
        ctx.reply_success(&Value::map([("ok", Value::Bool(true))]))
            .await?;
        Ok(Outcome::Done)
    }

    async fn handle_event(&self, _ctx: Context, _msg: Message) -> HandlerResult {
        let _ = self.steps.send(Step::Event);
        Ok(Outcome::Done)
    }
}

async fn next_step(steps: &mut mpsc::UnboundedReceiver<Step>) -> Step {
    tokio::time::timeout(WAIT, steps.recv())
        .await
        .expect("a step in time")
        .expect("service running")
}

fn config(name: &str, done: bool) -> Value {
    Value::map([("name", Value::from(name)), ("done", Value::Bool(done))])
}

#[tokio::test]
async fn business_queues_wait_until_the_service_is_configured() {
    let svc = unique("config");
    let (commands, events) = (commands_queue(&svc), events_queue(&svc));
    let _cleanup = QueueCleanup::new(&amqp_url(), [commands.clone(), events.clone()]);
    let probe = Probe::open().await;
    let mut requests = probe
        .listen("events", &[format!("{svc}.ConfigRequest")])
        .await;
    let reply_to = format!("{}.Reply", unique("probe"));
    let mut replies = probe
        .listen("commands", std::slice::from_ref(&reply_to))
        .await;

    let (tx, mut steps) = mpsc::unbounded_channel();
    let handle = start_in_state(
        builder(&svc)
            .config_keys([format!("{svc}.config.*")])
            .command_keys([format!("{svc}.Do")])
            .event_keys([format!("{svc}.Happened")]),
        Configurable {
            svc: svc.clone(),
            steps: tx,
        },
        ServiceState::Configuring,
    )
    .await;

    assert_eq!(next_step(&mut steps).await, Step::Unconfigured);
    let request = requests.next("the configuration request").await;
    assert_eq!(text(&request.value(), "service"), svc);

    // Sent before the service is configured: they wait in their queues,
    // which nobody consumes yet.
    let conversation = unique("conv");
    probe
        .send_command(
            &format!("{svc}.Do"),
            &Value::Null,
            &conversation,
            &reply_to,
            "c-1",
        )
        .await;
    probe
        .publish_event(&format!("{svc}.Happened"), &Value::Null, &conversation)
        .await;
    let waiting = |r: &serde_json::Value| r["messages_ready"] == 1 && r["consumers"] == 0;
    for queue in [&commands, &events] {
        wait_for_queue_row(queue, &["messages_ready", "consumers"], waiting).await;
    }

    // A configuration that does not complete it changes nothing.
    probe
        .publish_configuration(&format!("{svc}.config.partial"), &config("partial", false))
        .await;
    assert_eq!(
        next_step(&mut steps).await,
        Step::Configured("partial".into(), false)
    );
    assert_eq!(handle.health().state(), ServiceState::Configuring);
    for queue in [&commands, &events] {
        let row = queue_row(queue, &["messages_ready", "consumers"]).expect("listed");
        assert!(waiting(&row), "{queue} still waits: {row}");
    }
    assert!(replies.drain_for(Duration::ZERO).await.is_empty());

    // The one that completes it opens the business queues.
    probe
        .publish_configuration(&format!("{svc}.config.complete"), &config("complete", true))
        .await;
    assert_eq!(
        next_step(&mut steps).await,
        Step::Configured("complete".into(), true)
    );
    let mut after = Vec::new();
    for _ in 0..3 {
        after.push(next_step(&mut steps).await);
    }
    after.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(after, [Step::Command, Step::Event, Step::Ready]);
    assert!(handle.health().wait_for(ServiceState::Ready, WAIT).await);
    let reply = replies.next("the reply to the early command").await;
    assert_eq!(reply.status(), Some("success"));
    assert_eq!(reply.conversation_id(), Some(conversation.as_str()));

    // Configurations keep coming in once ready, without a second on_ready.
    probe
        .publish_configuration(&format!("{svc}.config.update"), &config("update", true))
        .await;
    assert_eq!(
        next_step(&mut steps).await,
        Step::Configured("update".into(), true)
    );
    stop(handle).await;
    assert!(
        steps.try_recv().is_err(),
        "on_ready ran once: no more steps"
    );
    probe.close().await;
}

#[tokio::test]
async fn without_configuration_keys_the_service_is_ready_at_once() {
    let svc = unique("config-none");
    let _cleanup = QueueCleanup::new(&amqp_url(), [commands_queue(&svc)]);
    let probe = Probe::open().await;
    let reply_to = format!("{}.Reply", unique("probe"));
    let mut replies = probe
        .listen("commands", std::slice::from_ref(&reply_to))
        .await;
    let (tx, mut steps) = mpsc::unbounded_channel();
    let handle = start(
        builder(&svc).command_keys([format!("{svc}.Do")]),
        Configurable {
            svc: svc.clone(),
            steps: tx,
        },
    )
    .await;

    assert_eq!(next_step(&mut steps).await, Step::Ready);
    probe
        .send_command(
            &format!("{svc}.Do"),
            &Value::Null,
            &unique("conv"),
            &reply_to,
            "c-1",
        )
        .await;
    assert_eq!(next_step(&mut steps).await, Step::Command);
    assert_eq!(replies.next("the reply").await.status(), Some("success"));
    stop(handle).await;
    assert!(steps.try_recv().is_err(), "on_unconfigured is never called");
    probe.close().await;
}
