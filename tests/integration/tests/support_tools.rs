//! The test support's broker tools work against the real broker.
//!
//! Later tests rely on `rabbitmqctl` wrappers, policies and queue cleanup to
//! set up faults and tidy up; these tests check each of them once, on
//! entities of their own, so they can run in parallel with anything.
//! Tools that disturb the whole broker (`stop_app`, the memory watermark)
//! are exercised by the serialised fault tests instead.

use std::time::{Duration, Instant};

use amqprs::BasicProperties;
use amqprs::channel::{BasicPublishArguments, QueueDeclareArguments};
use bus_core::BrokerUrl;
use bus_test_support::{
    Policy, QueueCleanup, amqp_url, connect, delete_queues, rabbitmqctl, unique,
};

/// Polls `check` until it holds: broker statistics and closes are
/// asynchronous.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn messages_in(queue: &str) -> Option<u64> {
    rabbitmqctl::list_queues()
        .expect("list_queues")
        .into_iter()
        .find(|(name, _)| name == queue)
        .map(|(_, messages)| messages)
}

async fn declare(url: &str, queues: &[String], publish_each: usize) {
    let connection = connect(url, &unique("support-tools"))
        .await
        .expect("connect");
    let channel = connection.open_channel(None).await.expect("channel");
    for queue in queues {
        channel
            .queue_declare(QueueDeclareArguments::new(queue))
            .await
            .expect("declare");
        for _ in 0..publish_each {
            channel
                .basic_publish(
                    BasicProperties::default(),
                    b"x".to_vec(),
                    BasicPublishArguments::new("", queue),
                )
                .await
                .expect("publish");
        }
    }
    channel.close().await.expect("close channel");
    connection.close().await.expect("close connection");
}

#[tokio::test]
async fn list_purge_and_delete_queues() {
    let url = amqp_url();
    let queue = unique("support-purge");
    let _cleanup = QueueCleanup::new(&url, [queue.clone()]);
    declare(&url, std::slice::from_ref(&queue), 2).await;

    eventually("the queue holds 2 messages", || {
        messages_in(&queue) == Some(2)
    });
    rabbitmqctl::purge_queue(&queue).expect("purge");
    eventually("the queue is empty", || messages_in(&queue) == Some(0));
    rabbitmqctl::delete_queue(&queue).expect("delete");
    assert_eq!(messages_in(&queue), None);
    assert!(
        rabbitmqctl::delete_queue(&queue).is_err(),
        "deleting twice fails"
    );
}

#[tokio::test]
async fn delete_queues_and_the_cleanup_guard_remove_queues() {
    let url = amqp_url();
    let queues = [unique("support-delete"), unique("support-delete")];
    declare(&url, &queues, 1).await;
    eventually("both queues exist", || {
        queues.iter().all(|q| messages_in(q).is_some())
    });
    delete_queues(&url, &queues).await.expect("delete_queues");
    assert!(queues.iter().all(|q| messages_in(q).is_none()));
    // Missing queues are not an error.
    delete_queues(&url, &queues).await.expect("delete again");

    let guarded = unique("support-guard");
    declare(&url, std::slice::from_ref(&guarded), 0).await;
    drop(QueueCleanup::new(&url, [guarded.clone()]));
    assert_eq!(messages_in(&guarded), None);
}

#[test]
fn policy_guard_sets_and_clears_the_policy() {
    let vhost = amqp_url().parse::<BrokerUrl>().expect("url").vhost;
    let policies = || {
        rabbitmqctl::run(&["-q", "list_policies", "-p", &vhost, "--no-table-headers"])
            .expect("list_policies")
    };
    let pattern = format!("^{}$", unique("support-policy"));
    let policy = Policy::set(&pattern, r#"{"message-ttl":60000}"#, "queues").expect("set");
    let name = policy.name().to_owned();
    assert!(policies().contains(&name));
    drop(policy);
    assert!(!policies().contains(&name));
}

// Multi-threaded: the blocking rabbitmqctl calls would otherwise stall the
// runtime that must answer the broker's close with close-ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_listed_by_name_and_can_be_closed() {
    let url = amqp_url();
    let name = unique("support-conn");
    let connection = connect(&url, &name).await.expect("connect");
    let pid_of = || {
        rabbitmqctl::list_connections_with_names()
            .expect("list_connections")
            .into_iter()
            .find(|(_, n)| *n == name)
            .map(|(pid, _)| pid)
    };
    let mut pid = None;
    eventually("the connection is listed", || {
        pid = pid_of();
        pid.is_some()
    });
    let pid = pid.unwrap_or_default();
    assert!(
        pid.starts_with('<'),
        "a pid close_connection accepts: {pid}"
    );

    rabbitmqctl::close_connection(&pid, "closed by the support_tools test").expect("close");
    eventually("the connection is gone", || pid_of().is_none());
    tokio::time::timeout(Duration::from_secs(10), async {
        while connection.is_open() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the client sees the close");
}

#[test]
fn start_app_on_a_running_broker_returns_once_amqp_answers() {
    let _url = amqp_url();
    rabbitmqctl::start_app().expect("start_app");
}
