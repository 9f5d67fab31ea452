//! The ack-after-confirm ledger of one session.
//!
//! Every delivery of the session is in the ledger from the moment it is
//! received until it is acked or nacked. A delivery becomes ackable once its
//! handler is done (or the service acked it manually) *and* the broker has
//! confirmed every message the handler published. Acks are then sent in
//! batches: one `multiple` ack when every unsettled delivery up to a tag is
//! ackable, single acks otherwise.
//!
//! The ledger is plain data owned by the session task: no locks, no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::outbox::PublishId;

/// What to tell the broker about deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// `basic.ack`.
    Ack { tag: u64, multiple: bool },
    /// `basic.nack` of one delivery.
    Nack { tag: u64, requeue: bool },
}

/// How a handler finished, as far as acknowledgement goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finished {
    /// Ack once these outputs are confirmed.
    Done { unconfirmed: Vec<PublishId> },
    /// The service acks or nacks it itself later.
    Deferred { unconfirmed: Vec<PublishId> },
    /// Nack now.
    Failed { requeue: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handling,
    Done,
    Deferred,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manual {
    Ack,
    Nack { requeue: bool },
}

#[derive(Debug)]
struct Entry {
    phase: Phase,
    unconfirmed: Vec<PublishId>,
    manual: Option<Manual>,
}

impl Entry {
    fn ackable(&self) -> bool {
        self.unconfirmed.is_empty()
            && match self.phase {
                Phase::Done => true,
                Phase::Deferred => self.manual == Some(Manual::Ack),
                Phase::Handling => false,
            }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    unsettled: BTreeMap<u64, Entry>,
    /// Which delivery waits for which output.
    waiting_on: HashMap<PublishId, u64>,
    /// Every tag up to this one has been received (tags start at 1).
    contiguous_seen: u64,
    /// Received tags above `contiguous_seen`.
    seen_above: BTreeSet<u64>,
    nacks: Vec<Settlement>,
}

impl Ledger {
    /// A delivery arrived and its handling starts.
    pub(crate) fn received(&mut self, tag: u64) {
        self.unsettled.insert(
            tag,
            Entry {
                phase: Phase::Handling,
                unconfirmed: Vec::new(),
                manual: None,
            },
        );
        self.seen(tag);
    }

    /// A delivery that is settled at once (an invalid one): it still counts
    /// as seen, so later `multiple` acks stay correct.
    pub(crate) fn rejected(&mut self, tag: u64, requeue: bool) {
        self.seen(tag);
        self.nacks.push(Settlement::Nack { tag, requeue });
    }

    fn seen(&mut self, tag: u64) {
        self.seen_above.insert(tag);
        while self.seen_above.remove(&(self.contiguous_seen + 1)) {
            self.contiguous_seen += 1;
        }
    }

    /// The handler of `tag` returned.
    pub(crate) fn finished(&mut self, tag: u64, finished: Finished) {
        let Some(entry) = self.unsettled.get_mut(&tag) else {
            return;
        };
        let (phase, unconfirmed) = match finished {
            Finished::Failed { requeue } => {
                self.settle_nack(tag, requeue);
                return;
            }
            Finished::Done { unconfirmed } => (Phase::Done, unconfirmed),
            Finished::Deferred { unconfirmed } => (Phase::Deferred, unconfirmed),
        };
        entry.phase = phase;
        if let Some(Manual::Nack { requeue }) = entry.manual {
            self.settle_nack(tag, requeue);
            return;
        }
        for id in &unconfirmed {
            self.waiting_on.insert(*id, tag);
        }
        entry.unconfirmed = unconfirmed;
    }

    /// The service acked `tag` (and, with `multiple`, every earlier
    /// delivery) itself. Applies to deliveries being handled or deferred.
    pub(crate) fn manual_ack(&mut self, tag: u64, multiple: bool) {
        for (_, entry) in self.targets(tag, multiple) {
            entry.manual = Some(Manual::Ack);
        }
    }

    /// The service nacked `tag` (and, with `multiple`, every earlier
    /// delivery) itself.
    pub(crate) fn manual_nack(&mut self, tag: u64, multiple: bool, requeue: bool) {
        let mut now = Vec::new();
        for (t, entry) in self.targets(tag, multiple) {
            entry.manual = Some(Manual::Nack { requeue });
            if entry.phase == Phase::Deferred {
                now.push(t);
            }
        }
        for t in now {
            self.settle_nack(t, requeue);
        }
    }

    fn targets(&mut self, tag: u64, multiple: bool) -> impl Iterator<Item = (u64, &mut Entry)> {
        let low = if multiple { 0 } else { tag };
        self.unsettled
            .range_mut(low..=tag)
            .filter(|(_, e)| e.phase != Phase::Done)
            .map(|(t, e)| (*t, e))
    }

    fn settle_nack(&mut self, tag: u64, requeue: bool) {
        if let Some(entry) = self.unsettled.remove(&tag) {
            for id in entry.unconfirmed {
                self.waiting_on.remove(&id);
            }
            self.nacks.push(Settlement::Nack { tag, requeue });
        }
    }

    /// The broker confirmed these outputs.
    pub(crate) fn confirmed(&mut self, ids: &[PublishId]) {
        for id in ids {
            if let Some(tag) = self.waiting_on.remove(id) {
                if let Some(entry) = self.unsettled.get_mut(&tag) {
                    entry.unconfirmed.retain(|x| x != id);
                }
            }
        }
    }

    /// What to send to the broker now, in order. Nacks first, then acks,
    /// coalesced into one `multiple` ack where that is exactly right.
    pub(crate) fn take_settlements(&mut self) -> Vec<Settlement> {
        let mut out = std::mem::take(&mut self.nacks);
        // The longest run of ackable deliveries from the lowest unsettled
        // one, as long as no tag below its end is still unknown to us.
        let mut prefix_end = None;
        let mut prefix_len = 0usize;
        // A run held back to go out with the delivery that ends it.
        let mut held_up_to = 0;
        for (tag, entry) in &self.unsettled {
            if *tag > self.contiguous_seen {
                break;
            }
            if !entry.ackable() {
                // The service already acked this one, which only waits for
                // its handler to return (a batch acks from inside the
                // handler of its last item) or for its confirms: the run
                // before it waits too, so that the whole run goes out as
                // one `multiple` ack, as eventail's batch sends it.
                if prefix_end.is_some() && entry.manual == Some(Manual::Ack) {
                    held_up_to = *tag;
                    prefix_end = None;
                }
                break;
            }
            prefix_end = Some(*tag);
            prefix_len += 1;
        }
        if let Some(end) = prefix_end {
            out.push(Settlement::Ack {
                tag: end,
                multiple: prefix_len > 1,
            });
            self.unsettled.retain(|tag, _| *tag > end);
        }
        let singles: Vec<u64> = self
            .unsettled
            .iter()
            .filter(|(t, e)| **t > held_up_to && e.ackable())
            .map(|(t, _)| *t)
            .collect();
        for tag in singles {
            self.unsettled.remove(&tag);
            out.push(Settlement::Ack {
                tag,
                multiple: false,
            });
        }
        out
    }

    /// Deliveries still waiting for their handler or their confirms
    /// (deferred ones excluded: they wait for the service).
    pub(crate) fn busy(&self) -> usize {
        self.unsettled
            .values()
            .filter(|e| e.phase != Phase::Deferred || e.manual.is_some())
            .count()
    }

    /// Deliveries not yet acked or nacked.
    #[cfg(test)]
    pub(crate) fn unsettled(&self) -> usize {
        self.unsettled.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(ids: &[PublishId]) -> Finished {
        Finished::Done {
            unconfirmed: ids.to_vec(),
        }
    }

    #[test]
    fn ack_waits_for_every_output() {
        let mut l = Ledger::default();
        l.received(1);
        l.finished(1, done(&[10, 11]));
        assert_eq!(l.take_settlements(), []);
        l.confirmed(&[10]);
        assert_eq!(l.take_settlements(), []);
        l.confirmed(&[11]);
        assert_eq!(
            l.take_settlements(),
            [Settlement::Ack {
                tag: 1,
                multiple: false
            }]
        );
        assert_eq!(l.unsettled(), 0);
    }

    #[test]
    fn no_outputs_acks_at_once_and_pipelines() {
        let mut l = Ledger::default();
        l.received(1);
        l.finished(1, done(&[7]));
        l.received(2);
        l.finished(2, done(&[]));
        // 2 is ready but 1 is not: a single ack for 2, never multiple.
        assert_eq!(
            l.take_settlements(),
            [Settlement::Ack {
                tag: 2,
                multiple: false
            }]
        );
        l.confirmed(&[7]);
        assert_eq!(
            l.take_settlements(),
            [Settlement::Ack {
                tag: 1,
                multiple: false
            }]
        );
    }

    #[test]
    fn contiguous_ready_deliveries_share_one_multiple_ack() {
        let mut l = Ledger::default();
        for tag in 1..=3 {
            l.received(tag);
            l.finished(tag, done(&[tag * 10]));
        }
        l.confirmed(&[10, 20, 30]);
        assert_eq!(
            l.take_settlements(),
            [Settlement::Ack {
                tag: 3,
                multiple: true
            }]
        );
    }

    #[test]
    fn multiple_never_covers_an_unseen_tag() {
        let mut l = Ledger::default();
        // Tag 2 is still buffered in another consumer's queue.
        l.received(1);
        l.received(3);
        l.finished(1, done(&[]));
        l.finished(3, done(&[]));
        assert_eq!(
            l.take_settlements(),
            [
                Settlement::Ack {
                    tag: 1,
                    multiple: false
                },
                Settlement::Ack {
                    tag: 3,
                    multiple: false
                }
            ]
        );
    }

    #[test]
    fn failures_nack_at_once_and_drop_their_waits() {
        let mut l = Ledger::default();
        l.received(1);
        l.finished(1, Finished::Failed { requeue: true });
        l.rejected(2, false);
        assert_eq!(
            l.take_settlements(),
            [
                Settlement::Nack {
                    tag: 1,
                    requeue: true
                },
                Settlement::Nack {
                    tag: 2,
                    requeue: false
                }
            ]
        );
        // Seen-tag tracking counts the rejected one.
        l.received(3);
        l.received(4);
        l.finished(3, done(&[]));
        l.finished(4, done(&[]));
        assert_eq!(
            l.take_settlements(),
            [Settlement::Ack {
                tag: 4,
                multiple: true
            }]
        );
    }

    #[test]
    fn deferred_waits_for_manual_ack_and_its_outputs() {
        let mut l = Ledger::default();
        l.received(1);
        l.finished(
            1,
            Finished::Deferred {
                unconfirmed: vec![5],
            },
        );
        l.received(2);
        l.finished(
            2,
            Finished::Deferred {
                unconfirmed: vec![],
            },
        );
        assert_eq!(l.take_settlements(), []);
        assert_eq!(l.busy(), 0);
        l.manual_ack(2, true);
        // 2 is ready; 1 still waits for output 5.
        assert_eq!(
            l.take_settlements(),
            [Settlement::Ack {
                tag: 2,
                multiple: false
            }]
        );
        l.confirmed(&[5]);
        assert_eq!(
            l.take_settlements(),
            [Settlement::Ack {
                tag: 1,
                multiple: false
            }]
        );
    }

    #[test]
    fn manual_ack_during_handling_applies_on_return() {
        // The batch helper acks from inside the handler of the last item.
        let mut l = Ledger::default();
        l.received(1);
        l.finished(
            1,
            Finished::Deferred {
                unconfirmed: vec![],
            },
        );
        l.received(2);
        l.received(3);
        l.finished(
            3,
            Finished::Deferred {
                unconfirmed: vec![],
            },
        );
        l.manual_ack(2, true);
        // 1 is ready now, but waits for 2, whose handler has not returned,
        // so that both go in one multiple ack; 3 was not acked.
        assert_eq!(l.take_settlements(), []);
        l.finished(
            2,
            Finished::Deferred {
                unconfirmed: vec![],
            },
        );
        assert_eq!(
            l.take_settlements(),
            [Settlement::Ack {
                tag: 2,
                multiple: true
            }]
        );
        assert_eq!(l.unsettled(), 1);
    }

    #[test]
    fn manual_nack_of_deferred_is_immediate() {
        let mut l = Ledger::default();
        l.received(1);
        l.finished(
            1,
            Finished::Deferred {
                unconfirmed: vec![9],
            },
        );
        l.received(2);
        l.manual_nack(2, true, false);
        assert_eq!(
            l.take_settlements(),
            [Settlement::Nack {
                tag: 1,
                requeue: false
            }]
        );
        l.finished(
            2,
            Finished::Deferred {
                unconfirmed: vec![],
            },
        );
        assert_eq!(
            l.take_settlements(),
            [Settlement::Nack {
                tag: 2,
                requeue: false
            }]
        );
        // A later confirm of the dropped output is harmless.
        l.confirmed(&[9]);
        assert_eq!(l.unsettled(), 0);
    }

    #[test]
    fn manual_ack_does_not_touch_done_deliveries() {
        let mut l = Ledger::default();
        l.received(1);
        l.finished(1, done(&[3]));
        l.manual_ack(1, false);
        assert_eq!(l.take_settlements(), []);
    }

    #[test]
    fn a_held_run_goes_alone_when_its_last_delivery_fails() {
        let mut l = Ledger::default();
        for tag in 1..=3 {
            l.received(tag);
        }
        for tag in 1..=2 {
            l.finished(
                tag,
                Finished::Deferred {
                    unconfirmed: vec![],
                },
            );
        }
        l.manual_ack(3, true);
        assert_eq!(l.take_settlements(), [], "no single acks while held");
        l.finished(3, Finished::Failed { requeue: true });
        assert_eq!(
            l.take_settlements(),
            [
                Settlement::Nack {
                    tag: 3,
                    requeue: true
                },
                Settlement::Ack {
                    tag: 2,
                    multiple: true
                }
            ]
        );
        assert_eq!(l.unsettled(), 0);
    }
}
