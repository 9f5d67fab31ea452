//! A broker policy that lives as long as a test.

use crate::{rabbitmqctl, unique};

/// A policy set for the duration of a test and cleared when dropped, even
/// when the test panics.
///
/// ```no_run
/// use bus_test_support::{unique, Policy};
///
/// let queue = unique("ttl");
/// let _policy = Policy::set(&format!("^{queue}$"), r#"{"message-ttl":100}"#, "queues")
///     .expect("policy");
/// ```
#[derive(Debug)]
pub struct Policy {
    name: String,
}

impl Policy {
    /// Sets a policy with a unique name on the entities whose names match
    /// `pattern` (a regular expression); `apply_to` is `queues`,
    /// `exchanges` or `all`.
    pub fn set(pattern: &str, definition_json: &str, apply_to: &str) -> Result<Policy, String> {
        let name = unique("test-policy");
        rabbitmqctl::set_policy(&name, pattern, definition_json, apply_to)?;
        Ok(Policy { name })
    }

    /// The policy's name on the broker.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        if let Err(e) = rabbitmqctl::clear_policy(&self.name) {
            eprintln!("warning: {e}");
        }
    }
}
