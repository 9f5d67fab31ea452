//! `cargo xtask broker up|down|status`.
//!
//! Discovery order for `up` (and `test`):
//! 1. a broker that completes an AMQP handshake at the URL is used as is;
//! 2. something that accepts TCP there but fails the handshake is waited
//!    for (it may be booting), never replaced: a second broker could not
//!    bind the port anyway;
//! 3. otherwise, for a URL on this machine, a broker is started: with
//!    Docker (`docker/compose.yml`) if an engine runs, else with
//!    `rabbitmq-server -detached`; what was started is recorded so that
//!    `down` stops only that.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bus_core::BrokerUrl;

use crate::launch;
use crate::probe::{Probe, Prober};
use crate::state::{self, Launcher, Started};

/// The broker the command works on.
pub(crate) struct Target {
    /// The URL as given, password included: only ever passed on to child
    /// processes in `$AMQP_URL`, never printed.
    pub(crate) raw: String,
    /// The parsed URL; its `Display` hides the password.
    pub(crate) url: BrokerUrl,
}

/// A broker that answers AMQP.
pub(crate) struct Ready {
    /// How xtask started it, if it did (now or in an earlier `up`).
    pub(crate) started_by_xtask: Option<Launcher>,
}

/// `broker up`.
pub(crate) fn up(target: &Target, timeout: Duration) -> Result<(), String> {
    let ready = ensure(target, timeout)?;
    if ready.started_by_xtask.is_some() {
        eprintln!("broker: `cargo xtask broker down` stops it");
    }
    Ok(())
}

/// Makes sure a broker answers at the target URL, starting one if needed.
pub(crate) fn ensure(target: &Target, timeout: Duration) -> Result<Ready, String> {
    let url = &target.url;
    let address = url.address();
    let prober = Prober::new()?;
    let version = match prober.probe(url) {
        Probe::Ready { version } => version,
        Probe::NoHandshake(why) => {
            eprintln!("broker: {why}; waiting in case it is still starting");
            wait(&prober, url, timeout)?
        }
        Probe::Absent(why) => {
            if !is_local(&url.host) {
                return Err(format!(
                    "no broker at {address} ({why}); xtask starts brokers only on this machine"
                ));
            }
            let launcher = launch::choose()?;
            eprintln!("broker: none at {address}; starting one with {launcher}");
            if let Some(launcher) = launch::start(launcher, url)? {
                // Saved before waiting, so `down` can stop a broker that
                // never became ready.
                state::save(&Started {
                    launcher,
                    address: address.clone(),
                })?;
            }
            wait(&prober, url, timeout)?
        }
    };
    let started_by_xtask = state::load().map(|s| s.launcher);
    let origin = match started_by_xtask {
        Some(launcher) => format!("started by xtask with {launcher}"),
        None => "not started by xtask".into(),
    };
    eprintln!("broker: {url} answers (RabbitMQ {version}, {origin})");
    Ok(Ready { started_by_xtask })
}

/// Probes until a handshake succeeds, with a dot per attempt and the
/// elapsed seconds every five, on stderr.
fn wait(prober: &Prober, url: &BrokerUrl, timeout: Duration) -> Result<String, String> {
    let start = Instant::now();
    let mut labelled = 0;
    eprint!("waiting for AMQP at {} ", url.address());
    loop {
        let attempt = Instant::now();
        let why = match prober.probe(url) {
            Probe::Ready { version } => {
                eprintln!(" ready after {}s", start.elapsed().as_secs());
                return Ok(version);
            }
            Probe::Absent(why) | Probe::NoHandshake(why) => why,
        };
        let elapsed = start.elapsed().as_secs();
        if start.elapsed() >= timeout {
            eprintln!();
            return Err(format!(
                "the broker at {} did not accept AMQP within {}s: {why}",
                url.address(),
                timeout.as_secs()
            ));
        }
        if elapsed / 5 > labelled {
            labelled = elapsed / 5;
            eprint!("{elapsed}s");
        } else {
            eprint!(".");
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(attempt.elapsed()));
    }
}

fn is_local(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `broker down`.
pub(crate) fn down(target: &Target) -> Result<(), String> {
    let Some(started) = state::load() else {
        println!("nothing to stop: the broker was not started by xtask");
        return Ok(());
    };
    eprintln!(
        "broker: stopping the broker started with {} for {}",
        started.launcher, started.address
    );
    match launch::stop(started.launcher) {
        Ok(()) => {
            state::clear()?;
            println!("stopped the broker started with {}", started.launcher);
            Ok(())
        }
        Err(e) => match Prober::new()?.probe(&target.url) {
            Probe::Absent(_) => {
                state::clear()?;
                println!("the broker xtask started is no longer running");
                Ok(())
            }
            _ => Err(e),
        },
    }
}

/// `broker status`: exits with 1 when the broker does not answer.
pub(crate) fn status(target: &Target) -> Result<ExitCode, String> {
    let probe = Prober::new()?.probe(&target.url);
    println!("url:              {}", target.url);
    let code = match probe {
        Probe::Ready { version } => {
            println!("reachable:        yes");
            println!("version:          RabbitMQ {version}");
            ExitCode::SUCCESS
        }
        Probe::Absent(why) | Probe::NoHandshake(why) => {
            println!("reachable:        no ({why})");
            ExitCode::FAILURE
        }
    };
    match state::load() {
        Some(started) => println!(
            "started by xtask: yes, with {} for {}",
            started.launcher, started.address
        ),
        None => println!("started by xtask: no"),
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_local() {
        assert!(is_local("localhost"));
        assert!(is_local("127.0.0.1"));
        assert!(is_local("::1"));
        assert!(!is_local("rabbit.example"));
        assert!(!is_local("10.0.0.5"));
    }
}
