//! The four exchanges of the bus and the queue names of a logical service.
//!
//! See `docs/protocol.md`, sections "Exchanges" and "Queues".

use std::fmt;

/// One of the four exchanges every participant declares.
///
/// All four are durable topic exchanges. Declaring them with other settings
/// makes the broker refuse the declaration, so these settings are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Exchange {
    /// `events`: facts that happened, published by any service.
    Events,
    /// `commands`: commands addressed to a service, and their results.
    Commands,
    /// `logs`: GELF log records.
    Logs,
    /// `configurations`: configuration messages.
    Configurations,
}

impl Exchange {
    /// All four exchanges, in the order eventail declares them.
    pub const ALL: [Exchange; 4] = [
        Exchange::Events,
        Exchange::Commands,
        Exchange::Configurations,
        Exchange::Logs,
    ];

    /// The exchange type: always `topic`.
    pub const KIND: &'static str = "topic";

    /// Whether the exchange survives a broker restart: always true.
    pub const DURABLE: bool = true;

    /// The exchange's name on the broker.
    pub const fn name(self) -> &'static str {
        match self {
            Exchange::Events => "events",
            Exchange::Commands => "commands",
            Exchange::Logs => "logs",
            Exchange::Configurations => "configurations",
        }
    }

    /// The exchange with this name, if it is one of the four.
    pub fn from_name(name: &str) -> Option<Exchange> {
        Exchange::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The durable queue a logical service consumes its events from: `<service>.events`.
///
/// Every instance of the service consumes the same queue, so instances share
/// the load.
pub fn events_queue(service: &str) -> String {
    format!("{service}.events")
}

/// The durable queue a logical service consumes its commands and results from:
/// `<service>.commands`.
pub fn commands_queue(service: &str) -> String {
    format!("{service}.commands")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_eventail_names() {
        let names: Vec<_> = Exchange::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names, ["events", "commands", "configurations", "logs"]);
        assert_eq!(Exchange::KIND, "topic");
        const { assert!(Exchange::DURABLE) };
    }

    #[test]
    fn from_name_round_trips_and_rejects_others() {
        for e in Exchange::ALL {
            assert_eq!(Exchange::from_name(e.name()), Some(e));
            assert_eq!(e.to_string(), e.name());
        }
        assert_eq!(Exchange::from_name("amq.topic"), None);
        assert_eq!(Exchange::from_name(""), None);
    }

    #[test]
    fn queue_names_follow_the_convention() {
        assert_eq!(events_queue("pong"), "pong.events");
        assert_eq!(commands_queue("pong"), "pong.commands");
    }
}
