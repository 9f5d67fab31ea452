//! Behaviour 7, load balancing: instances of one service share its queue,
//! so the broker splits the commands between them, and in normal
//! operation no command is handled twice.

mod probe;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_service::bus_core::Status;
use bus_service::{Client, Context, HandlerError, Router};
use bus_test_support::{QueueCleanup, amqp_url, unique};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use probe::{WAIT, builder, start, stop};

const COMMANDS: u64 = 200;

#[derive(Serialize, Deserialize)]
struct Work {
    n: u64,
}

#[derive(Serialize, Deserialize)]
struct Done {
    n: u64,
    instance: usize,
}

/// Which instance handled which command, every time one was handled.
type Handled = Arc<Mutex<Vec<(usize, u64)>>>;

fn instance(number: usize, handled: &Handled) -> Router {
    let handled = Arc::clone(handled);
    Router::new().command("Work", move |ctx: Context, work: Work| {
        let handled = Arc::clone(&handled);
        async move {
            handled.lock().unwrap().push((number, work.n));
            // Long enough for the broker to hand the next commands to the
            // other instance instead of waiting for this one.
            tokio::time::sleep(Duration::from_millis(2)).await;
            ctx.reply_success(&Done {
                n: work.n,
                instance: number,
            })
            .await?;
            Ok::<(), HandlerError>(())
        }
    })
}

#[tokio::test]
async fn two_instances_share_the_commands_and_none_is_handled_twice() {
    let url = amqp_url();
    let name = unique("balanced");
    let _cleanup = QueueCleanup::new(&url, [format!("{name}.commands")]);
    let handled: Handled = Arc::default();
    let first = start(builder(&name), instance(1, &handled)).await;
    let second = start(builder(&name), instance(2, &handled)).await;
    let client = Client::connect(builder(&unique("lb-client")), WAIT)
        .await
        .expect("client");

    let command = format!("{name}.Work");
    let (client, command) = (&client, &command);
    let calls = (0..COMMANDS).map(|n| async move { client.call(command, &Work { n }, WAIT).await });
    let replies = tokio::time::timeout(WAIT * 2, join_all(calls))
        .await
        .expect("every call returns");

    let mut answered_by = BTreeMap::new();
    for (n, reply) in (0..COMMANDS).zip(replies) {
        let reply = reply.unwrap_or_else(|e| panic!("command {n}: {e}"));
        assert_eq!(reply.status, Status::Success);
        let done: Done = reply.payload().expect("payload");
        assert_eq!(done.n, n, "each call gets the answer to its own command");
        answered_by.insert(n, done.instance);
    }
    assert_eq!(answered_by.len() as u64, COMMANDS);

    let handled = handled.lock().unwrap().clone();
    let mut times_handled = BTreeMap::new();
    for (number, n) in &handled {
        *times_handled.entry(*n).or_insert(0) += 1;
        assert_eq!(
            answered_by[n], *number,
            "command {n} answered by its handler"
        );
    }
    let twice: Vec<_> = times_handled.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    assert_eq!(times_handled.len() as u64, COMMANDS);
    let per_instance = |number| handled.iter().filter(|(i, _)| *i == number).count();
    let (by_first, by_second) = (per_instance(1), per_instance(2));
    println!("instance 1 handled {by_first}, instance 2 handled {by_second}");
    assert!(
        by_first > 0 && by_second > 0,
        "both instances take part: {by_first} and {by_second}"
    );

    client.close().await.expect("close client");
    stop(first).await;
    stop(second).await;
}
