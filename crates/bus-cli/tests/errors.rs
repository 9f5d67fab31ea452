//! Every error path of `bus`: one line on standard error, a documented exit
//! code, no backtrace, and never the password.

mod common;

use common::{assert_code, assert_error, bus, run, stderr, stdout};

/// A local port where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The test broker's URL with `password` and `vhost` instead.
fn url_with(password: &str, vhost: &str) -> String {
    let url: bus_core::BrokerUrl = bus_test_support::amqp_url().parse().unwrap();
    format!(
        "amqp://{}:{password}@{}:{}/{vhost}",
        url.user, url.host, url.port
    )
}

/// One invocation of each subcommand that talks to the broker.
fn every_subcommand() -> Vec<Vec<&'static str>> {
    vec![
        vec!["logger", "--timeout", "5"],
        vec!["monitor", "--timeout", "5"],
        vec!["publish", "bus-cli-test.Event", "--data", "{}"],
        vec![
            "send",
            "bus-cli-test.Command",
            "--data",
            "{}",
            "--timeout",
            "5",
        ],
        vec!["config", "bus-cli-test.Config", "--data", "{}"],
        vec!["inspect", "bus-cli-test-queue"],
        vec!["resurrect", "bus-cli-test-queue"],
    ]
}

/// Runs each argument list at once (a refused login takes the broker a
/// few seconds to answer).
async fn run_all(
    all: Vec<Vec<&'static str>>,
    prepare: impl Fn(&mut assert_cmd::Command),
) -> Vec<(Vec<&'static str>, std::process::Output)> {
    let mut running = Vec::new();
    for args in all {
        let mut cmd = bus();
        prepare(&mut cmd);
        cmd.args(&args);
        running.push((args, tokio::spawn(run(cmd))));
    }
    let mut done = Vec::new();
    for (args, task) in running {
        done.push((args, task.await.unwrap()));
    }
    done
}

#[tokio::test]
async fn connection_refused_names_the_address() {
    let port = closed_port();
    let url = format!("amqp://guest:hunter2@127.0.0.1:{port}/%2f");
    for (args, out) in run_all(every_subcommand(), |cmd| {
        cmd.env("AMQP_URL", &url);
    })
    .await
    {
        assert_error(&out, 69, &format!("no broker at 127.0.0.1:{port}"));
        assert!(!stderr(&out).contains("hunter2"), "{args:?}");
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
}

#[tokio::test]
async fn a_wrong_password_is_access_refused_and_never_printed() {
    let url = url_with("not-the-password-42", "%2f");
    // -vv: the diagnostics must not leak it either.
    for (args, out) in run_all(every_subcommand(), |cmd| {
        cmd.arg("-vv").arg("--url").arg(&url);
    })
    .await
    {
        assert_code(&out, 77);
        let err = stderr(&out);
        assert!(err.contains("access refused"), "{args:?}: {err}");
        assert!(!err.contains("not-the-password-42"), "{args:?}: {err}");
        assert!(!stdout(&out).contains("not-the-password-42"));
    }
}

#[tokio::test]
async fn an_unknown_vhost_is_access_refused() {
    let vhost = bus_test_support::unique("no-such-vhost");
    let mut cmd = bus();
    cmd.args([
        "--url",
        &url_with("guest", &vhost),
        "publish",
        "a.B",
        "--data",
        "{}",
    ]);
    assert_error(&run(cmd).await, 77, "access refused");
}

#[tokio::test]
async fn an_unknown_host_is_unreachable() {
    let mut cmd = bus();
    cmd.args([
        "--url",
        "amqp://guest:guest@no-such-host.invalid:5672/%2f",
        "send",
        "a.B",
        "--data",
        "{}",
    ]);
    assert_error(
        &run(cmd).await,
        69,
        "no broker at no-such-host.invalid:5672",
    );
}

#[tokio::test]
async fn the_second_url_is_tried_when_the_first_is_down() {
    let mut cmd = bus();
    let down = format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port());
    let key = bus_test_support::unique("second-url");
    cmd.args(["--url", &down, "--url", &bus_test_support::amqp_url()])
        .args(["publish", &format!("{key}.Event"), "--data", "{}"]);
    assert_code(&run(cmd).await, 0);
}

#[tokio::test]
async fn a_bad_url_is_a_usage_error_without_the_password() {
    let mut cmd = bus();
    cmd.args([
        "--url",
        "http://user:s3cret@host/",
        "publish",
        "a.B",
        "--data",
        "{}",
    ]);
    let out = run(cmd).await;
    assert_error(&out, 64, "invalid broker URL #1");
    assert!(!stderr(&out).contains("s3cret"));
    let mut cmd = bus();
    cmd.env("AMQP_URL", "amqp://user:s3cret@host:99999/")
        .args(["publish", "a.B", "--data", "{}"]);
    let out = run(cmd).await;
    assert_error(&out, 64, "invalid port");
    assert!(!stderr(&out).contains("s3cret"));
}

#[tokio::test]
async fn a_bad_payload_file_names_the_file_and_the_parse_error() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("broken.json");
    std::fs::write(&json, "{\"k\": oops}").unwrap();
    let cbor = dir.path().join("broken.CBOR");
    std::fs::write(&cbor, [0xff, 0x00]).unwrap();
    for (file, codec) in [(&json, "JSON"), (&cbor, "CBOR")] {
        for sub in ["publish", "send", "config"] {
            let mut cmd = bus();
            cmd.args([sub, "a.B"]).arg(file);
            let out = run(cmd).await;
            assert_error(
                &out,
                65,
                &format!("{}: cannot decode {codec} payload", file.display()),
            );
        }
    }
}

#[tokio::test]
async fn an_unknown_extension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("payload.yaml");
    std::fs::write(&yaml, "k: 1").unwrap();
    let mut cmd = bus();
    cmd.args(["publish", "a.B"]).arg(&yaml);
    assert_error(
        &run(cmd).await,
        65,
        &format!(
            "{}: unknown payload extension, expected .json or .cbor",
            yaml.display()
        ),
    );
}

#[tokio::test]
async fn a_missing_payload_file_is_not_found() {
    let mut cmd = bus();
    cmd.args(["send", "a.B", "/nonexistent/payload.json"]);
    assert_error(&run(cmd).await, 66, "/nonexistent/payload.json");
}

#[tokio::test]
async fn bad_inline_data_and_empty_stdin_are_bad_payloads() {
    let mut cmd = bus();
    cmd.args(["publish", "a.B", "--data", "{k: 1}"]);
    assert_error(&run(cmd).await, 65, "--data: cannot decode JSON payload");
    let mut cmd = bus();
    cmd.args(["publish", "a.B", "-"]).write_stdin("");
    assert_error(&run(cmd).await, 65, "standard input is empty");
    // Bytes have no JSON form.
    let mut cmd = bus();
    cmd.args(["publish", "a.B", "-", "--codec", "json"])
        .write_stdin([0x41, 0x07]);
    assert_error(&run(cmd).await, 65, "cannot encode the payload");
}

#[tokio::test]
async fn usage_errors_exit_64() {
    for args in [
        vec!["publish", "a.B"],
        vec!["publish", "a.B", "p.json", "--data", "{}"],
        vec!["send", "--data", "{}"],
        vec!["frobnicate"],
        vec!["logger", "--level", "LOUD"],
        vec!["monitor", "--filter-fields", "novalue"],
        vec!["inspect"],
    ] {
        let mut cmd = bus();
        cmd.args(&args);
        assert_error(&run(cmd).await, 64, "; see --help");
    }
    let mut cmd = bus();
    cmd.args(["publish", "", "--data", "{}"]);
    assert_error(&run(cmd).await, 64, "invalid event name");
    let mut cmd = bus();
    cmd.args(["send", "nodot", "--data", "{}"]);
    assert_error(&run(cmd).await, 64, "expected SERVICE.COMMAND");
    let mut cmd = bus();
    cmd.args(["monitor", "--timeout=-1"]);
    assert_error(&run(cmd).await, 64, "--timeout");
    let mut cmd = bus();
    cmd.args(["inspect", &"q".repeat(300)]);
    assert_error(&run(cmd).await, 64, "longer than 255 bytes");
}

#[tokio::test]
async fn a_missing_queue_is_not_found() {
    let queue = bus_test_support::unique("no-such-queue");
    for sub in ["inspect", "resurrect"] {
        let mut cmd = bus();
        cmd.args([sub, &queue]);
        assert_error(&run(cmd).await, 66, &format!("no queue named {queue:?}"));
    }
}

#[tokio::test]
async fn help_teaches_and_lists_the_exit_codes() {
    let mut cmd = bus();
    cmd.arg("--help");
    let out = run(cmd).await;
    assert_code(&out, 0);
    let text = stdout(&out);
    for needle in [
        "Examples:",
        "Exit codes:",
        "  77  access refused",
        "  3  unroutable",
    ] {
        assert!(text.contains(needle), "{needle:?} not in --help:\n{text}");
    }
    assert!(!text.contains("guest:guest"), "the help shows no password");
    let mut cmd = bus();
    cmd.args(["inspect", "--help"]);
    let text = stdout(&run(cmd).await);
    assert!(
        text.contains("marks every inspected message as redelivered"),
        "{text}"
    );
    assert!(text.contains("costs its messages their"), "{text}");
    let mut cmd = bus();
    cmd.args(["send", "--help"]);
    let text = stdout(&run(cmd).await);
    assert!(text.contains("2 when no result"), "{text}");
}

#[tokio::test]
async fn completions_are_printed() {
    for (shell, needle) in [
        ("bash", "_bus()"),
        ("zsh", "#compdef bus"),
        ("fish", "complete -c bus"),
    ] {
        let mut cmd = bus();
        cmd.args(["completions", shell]);
        let out = run(cmd).await;
        assert_code(&out, 0);
        assert!(stdout(&out).contains(needle), "{shell}");
        assert!(stdout(&out).contains("resurrect"), "{shell}");
    }
}
