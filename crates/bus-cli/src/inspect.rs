//! `bus inspect`: show the messages of a queue and put them back.
//!
//! Messages are fetched with `basic.get` and kept unacknowledged until the
//! end, then all put back at once with `basic.nack(multiple, requeue)`:
//! putting each back at once would make the next `basic.get` fetch it
//! again. RabbitMQ returns requeued messages to their place in the queue,
//! marked redelivered.

use std::path::Path;

use amqprs::channel::Channel;
use bus_core::Codec;

use crate::broker::{self, Brokers};
use crate::cli::InspectArgs;
use crate::exit::{self, CliError};
use crate::output::{Output, notice};
use crate::queue::{OpenQueue, get, open_queue, requeue_all};
use crate::save;

/// Shows up to `--count` messages; returns the exit code.
pub(crate) async fn run(
    args: InspectArgs,
    brokers: &Brokers,
    out: &mut Output,
) -> Result<u8, CliError> {
    let OpenQueue {
        connection,
        channel,
        count: in_queue,
        events: _events,
    } = open_queue(brokers, "bus-inspect", &args.queue).await?;
    let wanted = args.count.unwrap_or(in_queue).min(in_queue);
    let shown = show(&args, &channel, wanted, out).await;
    let (shown, last_tag) = match shown {
        Ok(done) => done,
        Err((error, last_tag)) => {
            // Put back what was fetched before failing; closing the
            // connection would do it too, later.
            let _ = requeue_all(&channel, last_tag).await;
            broker::close(connection).await;
            return Err(error);
        }
    };
    let requeued = requeue_all(&channel, last_tag).await;
    broker::close(connection).await;
    requeued?;
    notice(&format!(
        "{shown} of {in_queue} message(s) shown and left in {}",
        args.queue
    ));
    Ok(exit::OK)
}

/// Fetches and shows; on error, returns the last tag fetched so far.
async fn show(
    args: &InspectArgs,
    channel: &Channel,
    wanted: u64,
    out: &mut Output,
) -> Result<(u64, u64), (CliError, u64)> {
    let mut last_tag = 0;
    let mut shown = 0;
    while shown < wanted {
        let Some(seen) = get(channel, &args.queue).await.map_err(|e| (e, last_tag))? else {
            break;
        };
        last_tag = seen.delivery_tag;
        shown += 1;
        let view = seen.view();
        let saved = if args.save {
            let ext = match seen.codec() {
                Codec::Cbor => "cbor",
                Codec::Json => "json",
            };
            let path = save::payload_file(
                Path::new("."),
                &seen.routing_key,
                view.conversation_id(),
                ext,
                &seen.body,
            )
            .map_err(|e| (e, last_tag))?;
            Some(path)
        } else {
            None
        };
        let written = if out.is_json() {
            let mut record = view.to_json();
            if let Some(path) = &saved {
                record["saved_as"] = path.display().to_string().into();
            }
            out.record(&record)
        } else {
            let note = saved.map(|p| format!("saved as {}", p.display()));
            out.text(&view.to_text(note.as_deref()))
        };
        written.map_err(|e| (e.into(), last_tag))?;
    }
    Ok((shown, last_tag))
}
