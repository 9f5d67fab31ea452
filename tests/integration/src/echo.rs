//! The service under test: it answers each `Work` command with `Done`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_service::{Context, HandlerError, HandlerResult, Message, Outcome, Service};
use serde::{Deserialize, Serialize};

/// The command: do `id`, taking `delay_ms`; fail instead when `fail`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Work {
    /// The number of the command, unique within a test.
    pub id: u64,
    /// Extra time the handler takes, on top of the service's own delay.
    #[serde(default)]
    pub delay_ms: u64,
    /// A poison message: the handler always fails on it.
    #[serde(default)]
    pub fail: bool,
    /// Filler, to make big messages.
    #[serde(default)]
    pub pad: String,
    /// Publish the event `<service>.Worked` too, before the result.
    #[serde(default)]
    pub event: bool,
}

impl Work {
    /// Plain command number `id`.
    pub fn numbered(id: u64) -> Work {
        Work {
            id,
            ..Work::default()
        }
    }
}

/// The result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    /// The command's number.
    pub id: u64,
    /// The process that answered.
    pub pid: u32,
    /// Whether the command was a redelivery.
    pub redelivered: bool,
}

/// The command key of the echo service `service`.
pub fn work_key(service: &str) -> String {
    format!("{service}.Work")
}

/// How many times the handler started, per command.
#[derive(Debug, Clone, Default)]
pub struct Invocations(Arc<Mutex<HashMap<u64, u32>>>);

impl Invocations {
    fn record(&self, id: u64) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default() += 1;
    }

    /// How many times the handler started for `id`.
    pub fn of(&self, id: u64) -> u32 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
            .unwrap_or(0)
    }
}

/// The echo service.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    /// How long each command takes.
    pub delay: Duration,
    /// Print `READY` when ready and `START <id>` when a handler starts, on
    /// stdout: how a test follows a `fault-echo` process.
    pub announce: bool,
    /// Handler starts, per command.
    pub invocations: Invocations,
}

impl Echo {
    /// An echo whose every command takes `delay`.
    pub fn taking(delay: Duration) -> Echo {
        Echo {
            delay,
            ..Echo::default()
        }
    }
}

impl Service for Echo {
    async fn handle_command(&self, ctx: Context, msg: Message) -> HandlerResult {
        let work: Work = msg.payload()?;
        self.invocations.record(work.id);
        if self.announce {
            println!("START {}", work.id);
        }
        tokio::time::sleep(self.delay + Duration::from_millis(work.delay_ms)).await;
        if work.fail {
            return Err(HandlerError::msg(format!("poison message {}", work.id)));
        }
        let done = Done {
            id: work.id,
            pid: std::process::id(),
            redelivered: msg.meta().redelivered,
        };
        if work.event {
            let event = format!("{}.Worked", ctx.service_name());
            ctx.publish_event(&event, &done, msg.conversation_id())
                .await?;
        }
        ctx.reply_success(&done).await?;
        Ok(Outcome::Done)
    }

    async fn on_ready(&self, _ctx: Context) {
        if self.announce {
            println!("READY");
        }
    }
}
