//! The interoperability suite: bus against the reference Python
//! implementation, eventail 2.3.6 from PyPI, on a real broker.
//!
//! Every scenario runs both sides as real programs: the Python services of
//! `tests/interop/python/` (written on eventail's `Service`) and eventail's
//! installed tools, against our examples, the `bus` binary and small
//! services built with bus-service here. Run it with `cargo xtask interop`,
//! which creates the venv and builds the binaries first; it prints
//! `PASS name` or `FAIL name: reason` for each scenario, then
//! `N passed, M failed`.
//!
//! Arguments: words that select scenarios whose name contains one of them
//! (all by default); `--list` prints the names. Other `--options` (passed by
//! `cargo test` to every test binary) are ignored. `BUS_INTEROP_JOBS` sets
//! how many scenarios run at once (default 4).

mod broker;
mod fixtures;
mod process;
mod runner;
mod scenarios;
mod services;
mod tools;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<_> = scenarios::all()
        .into_iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .collect();
    if args.iter().any(|a| a == "--list") {
        for scenario in &selected {
            println!("{}", scenario.name);
        }
        return ExitCode::SUCCESS;
    }
    if selected.is_empty() && std::env::var_os("BUS_INTEROP_REQUIRE_MATCH").is_some() {
        // `cargo xtask interop NAME` sets it: a mistyped name must not pass.
        println!("FAIL setup: no scenario matches {filters:?}");
        println!("0 passed, 1 failed");
        return ExitCode::FAILURE;
    }
    if selected.is_empty() {
        // As libtest does with a filter that matches nothing: a workspace-wide
        // `cargo test NAME` (the test kit's `testkit`, for one) must not fail
        // here just because no scenario has that name.
        println!("no scenario matches {filters:?}");
        println!("0 passed, 0 failed");
        return ExitCode::SUCCESS;
    }
    runner::install_panic_hook();
    let checks = tools::Tools::locate()
        .and_then(|()| fixtures::check_comparator())
        .and_then(|()| runner::catch(bus_test_support::amqp_url).map(drop));
    if let Err(reason) = checks {
        println!("FAIL setup: {reason}");
        println!("0 passed, 1 failed");
        return ExitCode::FAILURE;
    }
    let jobs = std::env::var("BUS_INTEROP_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(4);
    let passed = runner::run_all(selected, jobs);
    broker::delete_fixed_names_vhost();
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
