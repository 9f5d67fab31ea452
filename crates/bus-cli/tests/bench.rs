//! `bus bench` end to end against an in-process service: both modes, both
//! output forms, and each exit code (success, error results, timeouts,
//! nobody listening, usage).

mod common;

use bus_test_support::unique;
use common::broker::start_echo;
use common::{assert_code, assert_error, bus, records, run, stdout};

const DATA: &str = r#"{"message": "hi"}"#;

/// `bus --json bench COMMAND --data DATA ARGS...`: checks the exit code and
/// that the report is one JSON object, and returns it.
async fn bench_json(command: &str, args: &[&str], code: i32) -> serde_json::Value {
    let mut cmd = bus();
    cmd.args(["--json", "bench", command, "--data", DATA])
        .args(args);
    let out = run(cmd).await;
    assert_code(&out, code);
    let mut records = records(&out);
    assert_eq!(records.len(), 1, "one JSON object");
    records.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_every_result_once() {
    let name = unique("bench-closed");
    let (service, _cleanup) = start_echo(&name).await;
    let command = format!("{name}.Echo");

    let r = &bench_json(&command, &["--count", "60", "--concurrency", "8"], 0).await;
    assert_eq!(r["command"], command.as_str());
    assert_eq!(r["mode"], "closed");
    assert_eq!(r["concurrency"], 8);
    assert_eq!(r["rate"], serde_json::Value::Null);
    for (field, n) in [("sent", 60), ("results", 60), ("ok", 60)] {
        assert_eq!(r[field], n, "{field}: {r}");
    }
    for field in [
        "errors",
        "error_results",
        "nacked",
        "timeouts",
        "late",
        "duplicates",
        "unknown",
    ] {
        assert_eq!(r[field], 0, "{field}: {r}");
    }
    let latency = &r["latency_ms"];
    let p50 = latency["p50"].as_f64().unwrap();
    assert!(p50 > 0.0, "{r}");
    for (lower, higher) in [
        ("p50", "p90"),
        ("p90", "p99"),
        ("p99", "p99.9"),
        ("p99.9", "max"),
    ] {
        assert!(
            latency[lower].as_f64() <= latency[higher].as_f64(),
            "{lower} > {higher}: {r}"
        );
    }
    assert!(r["throughput"].as_f64().unwrap() > 0.0, "{r}");

    // Text, and --duration alone: it sends until the time is up.
    let mut cmd = bus();
    cmd.args(["bench", &command, "--data", DATA, "--duration", "0.5"]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("{command}: ")), "{text}");
    assert!(
        first.ends_with("commands sent, closed loop, 10 in flight"),
        "{text}"
    );
    assert!(text.contains("\n  throughput  "), "{text}");
    assert!(text.contains("\n  latency     p50 "), "{text}");
    assert!(
        text.contains("\n  errors      0 (error results 0, nacked 0)  timeouts 0  duplicates 0\n"),
        "{text}"
    );
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_rate_mode_sends_the_count() {
    let name = unique("bench-rate");
    let (service, _cleanup) = start_echo(&name).await;

    let args = ["--rate", "100", "--count", "20", "--codec", "json"];
    let r = &bench_json(&format!("{name}.Echo"), &args, 0).await;
    assert_eq!(r["mode"], "rate");
    assert_eq!(r["rate"], 100.0);
    assert_eq!(r["concurrency"], serde_json::Value::Null);
    assert_eq!(
        (r["sent"].as_u64(), r["ok"].as_u64()),
        (Some(20), Some(20)),
        "{r}"
    );
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_results_exit_1_and_silence_exits_2() {
    let name = unique("bench-bad");
    let (service, _cleanup) = start_echo(&name).await;

    let r = &bench_json(&format!("{name}.Fail"), &["--count", "5"], 1).await;
    assert_eq!(
        (r["error_results"].as_u64(), r["ok"].as_u64()),
        (Some(5), Some(0)),
        "{r}"
    );
    assert_eq!(r["errors"], 5);

    let args = ["--count", "3", "--concurrency", "3", "--timeout", "0.5"];
    let r = &bench_json(&format!("{name}.Silent"), &args, 2).await;
    assert_eq!(
        (r["timeouts"].as_u64(), r["results"].as_u64()),
        (Some(3), Some(0)),
        "{r}"
    );
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_listening_stops_at_once_with_3() {
    let mut cmd = bus();
    cmd.args([
        "bench",
        &format!("{}.Echo", unique("bench-nobody")),
        "--data",
        DATA,
    ])
    .args(["--count", "100000"]);
    let out = run(cmd).await;
    assert_error(&out, 3, "no queue is bound for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_arguments_are_usage_errors() {
    for args in [
        &["pong.Echo", "--data", DATA, "--concurrency", "0"][..],
        &["pong.Echo", "--data", DATA, "--rate", "0"],
        &["pong.Echo", "--data", DATA, "--rate", "-3"],
        &["pong.Echo", "--data", DATA, "--count", "0"],
        &["pong.Echo", "--data", DATA, "--duration", "0"],
        &["pong.Echo", "--data", DATA, "--timeout", "-1"],
        &["pong", "--data", DATA],
    ] {
        let mut cmd = bus();
        cmd.arg("bench").args(args);
        let out = run(cmd).await;
        assert_error(&out, 64, "");
    }
    // Both modes at once: clap's own message, and the usage code.
    let mut cmd = bus();
    cmd.args([
        "bench",
        "pong.Echo",
        "--data",
        DATA,
        "--rate",
        "5",
        "--concurrency",
        "2",
    ]);
    assert_code(&run(cmd).await, 64);
}
