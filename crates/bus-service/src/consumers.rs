//! The session's consumers, polled as one stream of deliveries.

use std::task::Poll;

use amqprs::channel::{BasicCancelArguments, BasicConsumeArguments, Channel, ConsumerMessage};
use tokio::sync::mpsc::UnboundedReceiver;

struct Consumer {
    tag: String,
    rx: UnboundedReceiver<ConsumerMessage>,
}

/// What polling the consumers gave.
pub(crate) enum Polled {
    Delivery(Box<ConsumerMessage>),
    /// A consumer's stream ended: it was cancelled or its channel closed.
    Ended {
        consumer_tag: String,
    },
}

#[derive(Default)]
pub(crate) struct Consumers {
    consumers: Vec<Consumer>,
    /// Where the next poll starts, so no queue starves the others.
    start: usize,
}

impl Consumers {
    /// Subscribes to `queue` with manual acks.
    pub(crate) async fn subscribe(
        &mut self,
        channel: &Channel,
        queue: &str,
    ) -> Result<(), amqprs::error::Error> {
        let args = BasicConsumeArguments::new(queue, "")
            .manual_ack(true)
            .finish();
        let (tag, rx) = channel.basic_consume_rx(args).await?;
        self.consumers.push(Consumer { tag, rx });
        Ok(())
    }

    /// Asks the broker to stop delivering; what was already delivered stays
    /// unacked and goes back to the queue when the channel closes.
    pub(crate) async fn cancel_all(&mut self, channel: &Channel) {
        for consumer in self.consumers.drain(..) {
            let _ = channel
                .basic_cancel(BasicCancelArguments::new(&consumer.tag))
                .await;
        }
    }

    /// The next delivery from any consumer. Pending forever when there are
    /// no consumers, so it can sit in a `select!`.
    pub(crate) async fn next(&mut self) -> Polled {
        std::future::poll_fn(|cx| {
            let n = self.consumers.len();
            for i in 0..n {
                let index = (self.start + i) % n;
                match self.consumers[index].rx.poll_recv(cx) {
                    Poll::Ready(Some(message)) => {
                        self.start = (index + 1) % n;
                        return Poll::Ready(Polled::Delivery(Box::new(message)));
                    }
                    Poll::Ready(None) => {
                        let consumer = self.consumers.remove(index);
                        return Poll::Ready(Polled::Ended {
                            consumer_tag: consumer.tag,
                        });
                    }
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }
}
