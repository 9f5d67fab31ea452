//! Scenario 8: returned messages. A mandatory command to a service that
//! does not exist comes back from the broker to the sender's hook: bus's
//! `Service::handle_returned`, eventail's `handle_returned_message`. The
//! two differ when the hook fails (see `docs/migrating-from-eventail.md`):
//! eventail logs EMERGENCY and stops the service; bus logs EMERGENCY and
//! keeps running. Both are observed here.

use bus_core::Value;
use bus_service::{Context, Returned, Service, ServiceBuilder, ServiceState};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use serde_json::json;
use tokio::sync::mpsc;

use crate::process::{Proc, WAIT, ndjson};
use crate::services::{start, stop};
use crate::tools::{bus_logger_for_one, suite_python};

/// Sends one mandatory command to `target` once ready; hands what comes
/// back to the scenario, then panics if `panic` (to see what the runtime
/// does with a failing hook).
struct Returning {
    target: String,
    panic: bool,
    tx: mpsc::UnboundedSender<Returned>,
}

impl Service for Returning {
    async fn on_ready(&self, ctx: Context) {
        let reply_to = format!("{}.Reply", ctx.service_name());
        ctx.send_command(
            &self.target,
            &json!({"n": 1}),
            "conv-returned",
            &reply_to,
            "corr-returned",
        )
        .await
        .expect("send the command");
    }

    async fn handle_returned(&self, _ctx: Context, returned: Returned) {
        let _ = self.tx.send(returned);
        assert!(!self.panic, "the returned-message hook fails");
    }
}

pub(crate) async fn rust_hook() {
    for panic in [false, true] {
        let name = unique("rs-returning");
        let _cleanup = QueueCleanup::new(&amqp_url(), [bus_core::commands_queue(&name)]);
        let target = format!("{}.Do", unique("nobody"));
        let logger = if panic {
            Some(bus_logger_for_one(&format!("{name}.EMERGENCY"), true).await)
        } else {
            None
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let builder = ServiceBuilder::new(&name)
            .url(&amqp_url())
            .command_keys([format!("{name}.Reply")]);
        let returning = Returning {
            target: target.clone(),
            panic,
            tx,
        };
        let service = start(builder, returning).await;

        let returned = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("the command comes back within the wait")
            .expect("the service is running");
        assert_eq!(returned.exchange, "commands");
        assert_eq!(returned.routing_key, target);
        assert_eq!(
            (returned.reply_code, returned.reply_text.as_str()),
            (312, "NO_ROUTE")
        );
        assert_eq!(returned.conversation_id(), Some("conv-returned"));
        assert_eq!(returned.correlation_id(), Some("corr-returned"));
        assert_eq!(
            returned.properties.reply_to.as_deref(),
            Some(format!("{name}.Reply").as_str())
        );
        assert_eq!(
            returned.payload::<Value>().expect("decode"),
            Value::from_json(json!({"n": 1}))
        );

        if let Some(logger) = logger {
            let logged = logger.finish(WAIT).await;
            assert_eq!(logged.status.code(), Some(0), "{}", logged.transcript());
            let record = &ndjson(&logged.out)[0];
            assert_eq!(
                record["short_message"], "panic in handle_returned",
                "{record}"
            );
            assert_eq!(record["payload"]["level"], 0, "EMERGENCY");
        }
        // A failing hook does not stop a bus service.
        assert_eq!(service.health().state(), ServiceState::Ready);
        stop(service).await;
    }
}

pub(crate) async fn python_hook() {
    for raise in [false, true] {
        let name = unique("py-returning");
        let _cleanup = QueueCleanup::new(&amqp_url(), [bus_core::commands_queue(&name)]);
        let target = format!("{}.Do", unique("nobody"));
        let logger = if raise {
            Some(bus_logger_for_one(&format!("{name}.EMERGENCY"), true).await)
        } else {
            None
        };
        let mut args = vec![name.as_str(), target.as_str()];
        if raise {
            args.push("--raise");
        }
        let mut service = Proc::spawn(
            "returning_service.py",
            suite_python("returning_service.py", &amqp_url(), &args),
        );
        let returned = service.wait_tagged("RETURNED", |_| true).await;
        assert_eq!(
            returned,
            json!({
                "key": target,
                "payload": {"n": 1},
                "envelope": {
                    "reply_to": format!("{name}.Reply"),
                    "correlation_id": "corr-returned",
                    "conversation_id": "conv-returned",
                },
            })
        );

        if let Some(logger) = logger {
            // eventail logs EMERGENCY and stops the service by itself.
            let logged = logger.finish(WAIT).await;
            assert_eq!(logged.status.code(), Some(0), "{}", logged.transcript());
            let record = &ndjson(&logged.out)[0];
            let expected = format!("in handle_returned_message [{name}] the hook failed");
            assert_eq!(record["short_message"], expected.as_str(), "{record}");
            let ended = service.finish(WAIT).await;
            assert!(ended.status.success(), "{}", ended.transcript());
        } else {
            let ended = service.stop().await;
            assert!(ended.status.success(), "{}", ended.transcript());
        }
    }
}
