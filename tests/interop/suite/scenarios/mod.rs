//! The scenarios of issue 6, both directions each, one module per theme.
//! Names are `<theme>.<what>`: `cargo xtask interop <word>` runs those
//! whose name contains the word.

mod balancing;
mod commands;
mod config;
mod dead_letters;
mod events;
mod logs;
mod monitoring;
mod returned;

use crate::runner::{Scenario, scenario};

/// Every scenario, in the order of the issue.
pub(crate) fn all() -> Vec<Scenario> {
    vec![
        scenario!(
            "commands.send_command_py_to_rust",
            commands::send_command_py_to_rust
        ),
        scenario!(
            "commands.ping_example_to_python_pong",
            commands::ping_example_to_python_pong
        ),
        scenario!("commands.bus_send_to_python", commands::bus_send_to_python),
        scenario!(
            "commands.rust_client_to_python",
            commands::rust_client_to_python
        ),
        scenario!("events.rust_to_python", events::rust_to_python),
        scenario!("events.python_to_rust", events::python_to_rust),
        scenario!("logs.python_to_bus_logger", logs::python_to_bus_logger),
        scenario!("logs.rust_to_logger_py", logs::rust_to_logger_py),
        scenario!(
            "config.publish_configuration_py_to_rust",
            config::publish_configuration_py_to_rust
        ),
        scenario!("config.bus_config_to_python", config::bus_config_to_python),
        scenario!(
            "balancing.python_and_rust_share_a_queue",
            balancing::python_and_rust_share_a_queue
        ),
        scenario!(
            "dead_letters.rust_then_resurrect_py",
            dead_letters::rust_then_resurrect_py
        ),
        scenario!(
            "dead_letters.python_then_bus_resurrect",
            dead_letters::python_then_bus_resurrect
        ),
        scenario!(
            "monitoring.monitor_py_sees_rust",
            monitoring::monitor_py_sees_rust
        ),
        scenario!(
            "monitoring.bus_monitor_sees_python",
            monitoring::bus_monitor_sees_python
        ),
        scenario!("returned.rust_hook", returned::rust_hook),
        scenario!("returned.python_hook", returned::python_hook),
    ]
}
