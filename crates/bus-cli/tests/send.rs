//! `bus send` end to end: a command to an in-process service and its
//! result, in both output modes, with each exit code of the table.

mod common;

use std::time::Instant;

use bus_core::{Codec, Value};
use bus_test_support::unique;
use common::broker::start_echo;
use common::{assert_code, assert_error, bus, records, run, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_result_exits_0_and_shows_everything() {
    let name = unique("send-ok");
    let (service, _cleanup) = start_echo(&name).await;

    let mut cmd = bus();
    cmd.args([
        "send",
        &format!("{name}.Echo"),
        "--data",
        r#"{"message": "hi"}"#,
    ])
    .args(["--conversation-id", "conv-send-1", "--color", "never"]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(text.starts_with("result success "), "{text}");
    assert!(text.contains("  conversation_id  conv-send-1\n"), "{text}");
    assert!(text.contains("  correlation_id   "), "{text}");
    assert!(
        text.contains("  meta             exchange=commands"),
        "{text}"
    );
    assert!(text.contains("\"message\": \"hi\""), "{text}");

    let mut cmd = bus();
    cmd.args([
        "--json",
        "send",
        &format!("{name}.Echo"),
        "--data",
        r#"{"n": [1, 2]}"#,
    ]);
    let out = run(cmd).await;
    assert_code(&out, 0);
    let records = records(&out);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["kind"], "result");
    assert_eq!(r["status"], "success");
    assert_eq!(r["command"], format!("{name}.Echo"));
    assert_eq!(r["exchange"], "commands");
    assert_eq!(r["payload"], serde_json::json!({"n": [1, 2]}));
    assert_eq!(r["correlation_id"].as_str().unwrap().len(), 32);
    assert!(!r["conversation_id"].as_str().unwrap().is_empty());
    assert!(
        r["routing_key"]
            .as_str()
            .unwrap()
            .starts_with("bus-send.reply-")
    );
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_files_and_stdin_keep_cbor_tags() {
    let name = unique("send-files");
    let (service, _cleanup) = start_echo(&name).await;
    let dir = tempfile::tempdir().unwrap();
    // A CBOR epoch date (tag 1): serde would drop the tag, bus must not.
    let dated = Value::map([("at", Value::Tag(1, Box::new(Value::from(1_700_000_000))))]);
    let cbor = dir.path().join("dated.cbor");
    std::fs::write(&cbor, Codec::Cbor.encode_value(&dated).unwrap()).unwrap();
    let json = dir.path().join("p.json");
    std::fs::write(&json, r#"{"from": "file"}"#).unwrap();

    let mut cmd = bus();
    cmd.args(["--json", "send", &format!("{name}.Echo")])
        .arg(&cbor);
    let out = run(cmd).await;
    assert_code(&out, 0);
    assert_eq!(
        records(&out)[0]["payload"],
        serde_json::json!({"at": {"$tag": 1, "$value": 1_700_000_000}})
    );

    let mut cmd = bus();
    cmd.args(["--json", "send", &format!("{name}.Echo"), "--codec", "json"])
        .arg(&json);
    let out = run(cmd).await;
    assert_code(&out, 0);
    let r = &records(&out)[0];
    assert_eq!(r["payload"], serde_json::json!({"from": "file"}));

    let mut cmd = bus();
    cmd.args(["--json", "send", &format!("{name}.Echo"), "-"])
        .write_stdin(r#"{"from": "stdin"}"#);
    let out = run(cmd).await;
    assert_code(&out, 0);
    assert_eq!(records(&out)[0]["payload"]["from"], "stdin");
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_result_exits_1() {
    let name = unique("send-err");
    let (service, _cleanup) = start_echo(&name).await;
    let mut cmd = bus();
    cmd.args([
        "send",
        &format!("{name}.Fail"),
        "--data",
        "{}",
        "--color",
        "never",
    ]);
    let out = run(cmd).await;
    assert_code(&out, 1);
    let text = stdout(&out);
    assert!(text.starts_with("result error "), "{text}");
    assert!(text.contains("\"reason\": \"refused\""), "{text}");

    let mut cmd = bus();
    cmd.args(["--json", "send", &format!("{name}.Fail"), "--data", "{}"]);
    let out = run(cmd).await;
    assert_code(&out, 1);
    assert_eq!(records(&out)[0]["status"], "error");
    service.stop().await.unwrap();
}

#[tokio::test]
async fn nobody_listening_exits_3() {
    let command = format!("{}.Anything", unique("nobody"));
    let mut cmd = bus();
    cmd.args(["send", &command, "--data", "{}"]);
    let out = run(cmd).await;
    assert_error(&out, 3, &format!("no service listens to {command}"));
    assert!(stdout(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_in_time_exits_2() {
    let name = unique("send-silent");
    let (service, _cleanup) = start_echo(&name).await;
    let started = Instant::now();
    let mut cmd = bus();
    cmd.args([
        "send",
        &format!("{name}.Silent"),
        "--data",
        "{}",
        "--timeout",
        "0.5",
    ]);
    let out = run(cmd).await;
    assert_error(
        &out,
        2,
        &format!("no result for {name}.Silent within 0.5 s"),
    );
    // It waited for the answer, not more than a few seconds.
    assert!(started.elapsed().as_millis() >= 500);
    service.stop().await.unwrap();
}
