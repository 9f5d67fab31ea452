//! `cargo xtask demo` run as a newcomer runs it, on a virtual host of its
//! own (so its `pong` shares no queue with another test's): it exits 0
//! after showing pong's bus logs through `bus logger`, ping's echoes and
//! the result of `bus send`, and leaves no connection open behind it.

use std::process::Command;
use std::time::{Duration, Instant};

use bus_test_support::{Vhost, rabbitmqctl};

#[test]
fn demo_shows_the_bus_at_work_then_stops_everything() {
    let vhost = Vhost::create("demo").expect("a vhost for the demo");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--watch", "4"])
        .env("AMQP_URL", vhost.url())
        .output()
        .expect("run cargo xtask demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        output.status.success(),
        "demo failed: {}\n{shown}",
        output.status
    );

    // The logger shows pong's records, formatted.
    assert!(
        stdout.lines().any(|l| l.starts_with("logger | ")
            && l.contains(" INFO ")
            && l.contains("pong@")
            && l.contains("Echoing")),
        "{shown}"
    );
    assert!(
        stdout.contains("logger |     Sending back hello\n"),
        "{shown}"
    );
    assert!(stdout.contains("  ping | got echo: HELLO\n"), "{shown}");
    // The command's result, successful.
    assert!(stdout.contains("\nresult success "), "{shown}");
    assert!(
        stdout.contains("\"echo\": \"HELLO FROM THE DEMO\""),
        "{shown}"
    );
    // Every program stopped on SIGTERM, pong saying goodbye.
    for program in ["ping", "pong", "logger"] {
        assert!(
            stderr.contains(&format!("demo: stopping {program} (SIGTERM)\n")),
            "{shown}"
        );
    }
    assert!(stdout.contains("  pong | Bye!\n"), "{shown}");
    assert!(
        stderr.contains("demo: done; everything is stopped"),
        "{shown}"
    );

    // No program is left connected to the demo's vhost.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let connections =
            rabbitmqctl::run(&["-q", "list_connections", "--no-table-headers", "vhost"])
                .expect("rabbitmqctl list_connections");
        let left = connections
            .lines()
            .filter(|line| line.trim() == vhost.name())
            .count();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} connection(s) still open on the demo's vhost"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
