//! A virtual host of a test's own, for faults that would disturb other
//! tests on a shared one (deleting one of the bus's exchanges).

use bus_core::BrokerUrl;

use crate::broker::configured_url;
use crate::{rabbitmqctl, unique};

/// A virtual host created for a test, where the URL's user may do
/// anything, and deleted (with everything in it) when dropped.
#[derive(Debug)]
pub struct Vhost {
    name: String,
    url: String,
}

impl Vhost {
    /// Creates a vhost with a unique name starting with `prefix`. Runs
    /// `rabbitmqctl`: call it from a blocking context.
    pub fn create(prefix: &str) -> Result<Vhost, String> {
        let base = configured_url();
        let parsed: BrokerUrl = base.parse().map_err(|e| format!("invalid AMQP_URL: {e}"))?;
        let address = parsed.address();
        let start = base
            .find(&address)
            .ok_or_else(|| "the broker URL must name its host and port".to_owned())?
            + address.len();
        let query = base[start..].find('?').map_or("", |q| &base[start + q..]);
        let name = unique(prefix);
        let url = format!("{}/{name}{query}", &base[..start]);
        let vhost = Vhost { name, url };
        rabbitmqctl::run(&["add_vhost", &vhost.name])?;
        rabbitmqctl::run(&[
            "set_permissions",
            "-p",
            &vhost.name,
            &parsed.user,
            ".*",
            ".*",
            ".*",
        ])?;
        Ok(vhost)
    }

    /// The vhost's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The broker URL of the test broker, on this vhost.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        if let Err(e) = rabbitmqctl::run(&["delete_vhost", &self.name]) {
            eprintln!("warning: {e}");
        }
    }
}
