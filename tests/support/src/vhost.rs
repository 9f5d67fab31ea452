//! A virtual host that lives as long as a test.

use bus_core::BrokerUrl;

use crate::{amqp_url, rabbitmqctl, unique};

/// A fresh virtual host on the test broker, where the user of
/// [`amqp_url`] has every permission; deleted, with everything in it, when
/// dropped.
///
/// For tests that must see a vhost untouched by others (the exchanges a
/// service declares), or that run programs with fixed names (`pong`, or
/// eventail's `send_command.py`, which always listens to `debug.return`)
/// that would meet other tests' programs on the shared vhost.
#[derive(Debug)]
pub struct Vhost {
    name: String,
}

impl Vhost {
    /// Creates a vhost named `<prefix>-<unique suffix>`.
    pub fn create(prefix: &str) -> Result<Vhost, String> {
        let name = unique(prefix);
        rabbitmqctl::run(&["add_vhost", &name])?;
        // Owned from here on, so a failure below still deletes it.
        let vhost = Vhost { name };
        let user = amqp_url()
            .parse::<BrokerUrl>()
            .map_err(|e| e.to_string())?
            .user;
        rabbitmqctl::run(&[
            "set_permissions",
            "-p",
            &vhost.name,
            &user,
            ".*",
            ".*",
            ".*",
        ])?;
        Ok(vhost)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test broker URL with this virtual host.
    pub fn url(&self) -> String {
        with_vhost(&amqp_url(), &self.name)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        if let Err(e) = rabbitmqctl::run(&["delete_vhost", &self.name]) {
            eprintln!("warning: {e}");
        }
    }
}

/// `url` with its path replaced by the (percent-encoded) vhost `name`,
/// keeping the query.
fn with_vhost(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    match query {
        Some(q) => format!("{}/{encoded}?{q}", &base[..authority_end]),
        None => format!("{}/{encoded}", &base[..authority_end]),
    }
}

#[cfg(test)]
mod tests {
    use super::with_vhost;

    #[test]
    fn the_path_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_vhost("amqp://u:p@h:5672/%2f", "t-1"),
            "amqp://u:p@h:5672/t-1"
        );
        assert_eq!(
            with_vhost("amqp://u:p@h:5672/%2f?heartbeat=5", "t-1"),
            "amqp://u:p@h:5672/t-1?heartbeat=5"
        );
        assert_eq!(with_vhost("amqp://h", "a/b"), "amqp://h/a%2Fb");
    }
}
