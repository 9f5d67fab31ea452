//! Ack after confirm, in its simplest form: each delivery publishes exactly
//! one confirmed message (its result), deliveries are handled in order, so
//! a delivery may be acked once its result and every earlier one are
//! confirmed. One `multiple` ack then covers the whole confirmed prefix.

use std::collections::VecDeque;

/// Results waiting for their confirm, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// (publish sequence number, delivery tag, confirmed).
    entries: VecDeque<(u64, u64, bool)>,
}

impl Pending {
    /// Records that the result of `delivery_tag` went out as publish `seq`.
    pub(crate) fn push(&mut self, seq: u64, delivery_tag: u64) {
        self.entries.push_back((seq, delivery_tag, false));
    }

    /// Applies a broker ack; returns the delivery tag to ack with
    /// `multiple`, if the confirmed prefix grew.
    pub(crate) fn confirm(&mut self, tag: u64, multiple: bool) -> Option<u64> {
        for entry in self.entries.iter_mut() {
            if entry.0 > tag {
                break;
            }
            if multiple || entry.0 == tag {
                entry.2 = true;
            }
        }
        let mut last = None;
        while let Some(&(_, delivery_tag, true)) = self.entries.front() {
            last = Some(delivery_tag);
            self.entries.pop_front();
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_the_confirmed_prefix_only() {
        let mut p = Pending::default();
        for (seq, dtag) in [(1, 10), (2, 11), (3, 12)] {
            p.push(seq, dtag);
        }
        assert_eq!(p.confirm(2, false), None, "1 is not confirmed yet");
        assert_eq!(p.confirm(1, false), Some(11));
        assert_eq!(p.confirm(3, true), Some(12));
        assert_eq!(p.confirm(3, true), None);
    }
}
