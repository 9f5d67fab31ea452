//! The teaching examples `clock`, `configured`, `publisher`, `client` and
//! `first_service` (the README's)
//! run as programs, each on a virtual host of its own (so their fixed
//! service names share no queue with another test), and do what their
//! header comments say.

mod probe;
mod programs;

use std::time::Duration;

use bus_service::bus_core::{Exchange, LogLevel, Value};
use bus_service::{CallError, Client, ServiceBuilder};
use bus_test_support::{Vhost, unique};
use serde_json::json;

use probe::{Probe, WAIT};
use programs::Program;

/// A vhost, and a probe connected to it with the bus exchanges declared
/// (so it can listen before the program under test has declared them).
async fn on_a_vhost_of_its_own(prefix: &str) -> (Vhost, Probe) {
    let vhost = tokio::task::block_in_place(|| Vhost::create(prefix)).expect("a vhost");
    let probe = Probe::open_at(vhost.url()).await;
    probe.declare_bus_exchanges().await;
    (vhost, probe)
}

async fn terminated_cleanly(program: &mut Program) {
    let status = program.terminate().await;
    assert!(
        status.success(),
        "exits with 0 on SIGTERM: {status}\n{}",
        program.output()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clock_publishes_ticks_and_logs_at_its_period() {
    let (vhost, probe) = on_a_vhost_of_its_own("clock").await;
    let mut ticks = probe
        .listen(Exchange::Events.name(), &["clock.MinuteTicked"])
        .await;
    let mut logs = probe.listen(Exchange::Logs.name(), &["clock.*"]).await;
    let mut clock = Program::example("clock", &["--period", "0.3", vhost.url()]);

    let first = ticks.next("the first tick").await.value();
    let second = ticks.next("the second tick").await.value();
    assert_eq!(first.get("tick"), Some(&Value::from(0u64)), "{first:?}");
    assert_eq!(second.get("tick"), Some(&Value::from(1u64)), "{second:?}");
    let time = |v: &Value| match v.get("unix_time") {
        Some(Value::Integer(t)) => *t,
        other => panic!("unix_time: {other:?}"),
    };
    assert!(time(&second) >= time(&first));
    let log = logs.next("the clock's log").await;
    assert_eq!(log.routing_key, "clock.NOTICE");
    assert_eq!(log.gelf()["short_message"], json!("I'm fine!"));
    assert_eq!(log.gelf()["level"], json!(LogLevel::Notice as u8));
    terminated_cleanly(&mut clock).await;
    assert!(clock.output().contains("tick 1 at "), "{}", clock.output());
    probe.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_serves_only_once_configured() {
    let (vhost, probe) = on_a_vhost_of_its_own("configured").await;
    let mut requests = probe
        .listen(
            Exchange::Events.name(),
            &["configured.ConfigurationRequested"],
        )
        .await;
    let mut configured = Program::example("configured", &[vhost.url()]);
    let request = requests.next("a configuration request").await.value();
    assert_eq!(request.get("service"), Some(&Value::from("configured")));
    let client = Client::connect(ServiceBuilder::new(&unique("asker")).url(vhost.url()), WAIT)
        .await
        .expect("client");
    let greet = async |timeout| {
        client
            .call("configured.Greet", &json!({ "name": "Ada" }), timeout)
            .await
            .map(|reply| reply.payload::<serde_json::Value>().expect("payload"))
    };

    // Not configured: the command waits in the queue, unanswered.
    match greet(Duration::from_millis(800)).await {
        Err(CallError::TimedOut { .. }) => {}
        other => panic!("expected no answer before the configuration, got {other:?}"),
    }
    let configure = async |greeting: &str| {
        let settings = Value::map([("greeting", Value::from(greeting))]);
        probe
            .publish_configuration("configured.Settings", &settings)
            .await;
        let applied = format!("configured: greeting {greeting:?}");
        configured
            .wait_for_output(&applied, |out| out.contains(&applied))
            .await;
    };
    configure("Hello").await;
    assert!(
        configured.output().contains("ready: serving"),
        "{}",
        configured.output()
    );
    let answer = greet(WAIT).await.expect("an answer once configured");
    assert_eq!(answer, json!({ "greeting": "Hello, Ada" }));
    // A later configuration applies on the fly.
    configure("Bonjour").await;
    let answer = greet(WAIT).await.expect("an answer");
    assert_eq!(answer, json!({ "greeting": "Bonjour, Ada" }));
    client.close().await.expect("close client");
    terminated_cleanly(&mut configured).await;
    probe.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publisher_publishes_confirmed_events_and_exits() {
    let (vhost, probe) = on_a_vhost_of_its_own("publisher").await;
    let mut events = probe
        .listen(Exchange::Events.name(), &["demo.NumberPublished"])
        .await;
    let mut publisher = Program::example("publisher", &["3", vhost.url()]);
    let status = publisher.wait(WAIT).await;
    assert!(status.success(), "{status}\n{}", publisher.output());
    let mut conversations = Vec::new();
    for number in 1..=3u64 {
        let event = events.next("an event").await;
        assert_eq!(event.value().get("number"), Some(&Value::from(number)));
        conversations.push(event.conversation_id().map(str::to_owned));
    }
    assert!(conversations.iter().all(|c| c == &conversations[0]));
    let printed = publisher.output();
    assert_eq!(printed.matches(" confirmed [").count(), 3, "{printed}");
    probe.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_calls_pong_and_reports_how_the_call_ended() {
    let (vhost, probe) = on_a_vhost_of_its_own("client").await;
    // Nobody ever declared pong.commands here: unroutable, exit code 3.
    let mut alone = Program::example("client", &["hi", vhost.url()]);
    let status = alone.wait(WAIT).await;
    assert_eq!(status.code(), Some(3), "{}", alone.output());
    assert!(
        alone.output().contains("is pong running?"),
        "{}",
        alone.output()
    );

    let mut pong = Program::example("pong", &[vhost.url()]);
    let mut attempts = 0;
    let answered = loop {
        let mut client = Program::example("client", &["hi", vhost.url()]);
        let status = client.wait(WAIT).await;
        // pong may not have declared its queue yet.
        if status.code() == Some(3) && attempts < 50 {
            attempts += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert!(status.success(), "{status}\n{}", client.output());
        break client.output();
    };
    assert!(answered.contains("pong answered: HI\n"), "{answered}");
    terminated_cleanly(&mut pong).await;
    probe.close().await;
}

/// The README's "Write your first service" is `examples/first_service.rs`,
/// verbatim: the example is compiled with the others and run below, so the
/// snippet cannot rot.
#[test]
fn readme_shows_the_first_service_example_verbatim() {
    let package = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = package.ancestors().nth(2).expect("the workspace root");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let example = std::fs::read_to_string(package.join("examples/first_service.rs"))
        .expect("examples/first_service.rs");
    let section = readme
        .split_once("## Write your first service")
        .map(|(_, after)| after)
        .expect("a \"Write your first service\" section in README.md");
    let block = section
        .split_once("```rust\n")
        .and_then(|(_, code)| code.split_once("```\n"))
        .map(|(code, _)| code)
        .expect("a rust code block in that section");
    assert_eq!(
        block, example,
        "the README's first service differs from examples/first_service.rs: copy the file into it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn first_service_answers_greet() {
    let (vhost, probe) = on_a_vhost_of_its_own("hello").await;
    let mut command = std::process::Command::new(programs::examples_dir().join("first_service"));
    command.env("AMQP_URL", vhost.url());
    let mut hello = Program::spawn("first_service", &mut command);
    let client = Client::connect(ServiceBuilder::new(&unique("asker")).url(vhost.url()), WAIT)
        .await
        .expect("client");
    let deadline = std::time::Instant::now() + WAIT;
    let reply = loop {
        match client
            .call("hello.Greet", &json!({ "name": "Ada" }), WAIT)
            .await
        {
            // hello may not have declared its queue yet.
            Err(CallError::Unroutable { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other.expect("an answer from hello"),
        }
    };
    let answer: serde_json::Value = reply.payload().expect("payload");
    assert_eq!(answer, json!({ "greeting": "Hello, Ada!" }));
    client.close().await.expect("close client");
    terminated_cleanly(&mut hello).await;
    probe.close().await;
}
