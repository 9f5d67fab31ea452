//! A service that receives the results, as the caller of the echo service
//! would. Being a bus service, it reconnects by itself through the faults.

use bus_service::{
    Context, HandlerResult, Message, Outcome, Service, ServiceBuilder, ServiceHandle,
};

use crate::echo::Done;
use crate::tally::Tally;

/// A running collector.
#[derive(Debug)]
pub struct Collector {
    /// The results so far.
    pub tally: Tally,
    /// The `reply_to` to put on commands.
    pub reply_to: String,
    /// The service's name (its queue is `<name>.commands`).
    pub name: String,
    handle: Option<ServiceHandle>,
}

struct Results(Tally);

impl Service for Results {
    async fn handle_result(&self, _ctx: Context, msg: Message) -> HandlerResult {
        let done: Done = msg.payload()?;
        self.0.record_done(&done);
        Ok(Outcome::Done)
    }
}

impl Collector {
    /// Starts a collector named `name` on `url` and waits until it
    /// consumes.
    pub async fn start(url: &str, name: &str) -> Collector {
        let tally = Tally::default();
        let reply_to = format!("{name}.Done");
        let handle = ServiceBuilder::new(name)
            .url(url)
            .command_keys([reply_to.clone()])
            .prefetch(50)
            .start(Results(tally.clone()))
            .expect("start the collector");
        crate::states::wait_ready(&handle.health(), "collector").await;
        Collector {
            tally,
            reply_to,
            name: name.to_owned(),
            handle: Some(handle),
        }
    }

    /// The collector's queue.
    pub fn queue(&self) -> String {
        bus_core::commands_queue(&self.name)
    }

    /// Stops the collector.
    pub async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.stop().await;
        }
    }
}
