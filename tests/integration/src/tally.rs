//! Counting results: sent, received, unique, duplicates, lost.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::echo::Done;

/// The results received so far, by command number. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tally {
    counts: Arc<Mutex<HashMap<u64, u32>>>,
    /// Redelivered commands answered, by the answering process.
    redeliveries: Arc<Mutex<HashMap<u32, u64>>>,
    /// The number of results received, to wait on.
    received: watch::Sender<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counts: Arc::default(),
            redeliveries: Arc::default(),
            received: watch::Sender::new(0),
        }
    }
}

impl Tally {
    /// Records a result.
    pub fn record_done(&self, done: &Done) {
        if done.redelivered {
            *self
                .redeliveries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(done.pid)
                .or_default() += 1;
        }
        self.record(done.id);
    }

    /// How many redelivered commands process `pid` answered.
    pub fn redeliveries_answered_by(&self, pid: u32) -> u64 {
        self.redeliveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pid)
            .copied()
            .unwrap_or(0)
    }

    /// Records one result for command `id`.
    pub fn record(&self, id: u64) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default() += 1;
        self.received.send_modify(|n| *n += 1);
    }

    /// How many results arrived, duplicates included.
    pub fn received(&self) -> u64 {
        *self.received.borrow()
    }

    /// The distinct commands answered.
    pub fn ids(&self) -> BTreeSet<u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// Waits until at least `n` results arrived, or `timeout` passed.
    /// Returns whether they did.
    pub async fn wait_received(&self, n: u64, timeout: Duration) -> bool {
        let mut rx = self.received.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= n))
            .await
            .is_ok()
    }

    /// Waits until every command in `sent` was answered, or `timeout`
    /// passed. Returns whether they were.
    pub async fn wait_all(&self, sent: &BTreeSet<u64>, timeout: Duration) -> bool {
        let mut rx = self.received.subscribe();
        let all = async {
            loop {
                if sent.is_subset(&self.ids()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, all).await.is_ok()
    }

    /// Waits until no result arrived for `quiet`, to let late duplicates
    /// land before counting.
    pub async fn settle(&self, quiet: Duration) {
        let mut rx = self.received.subscribe();
        while tokio::time::timeout(quiet, rx.changed())
            .await
            .is_ok_and(|r| r.is_ok())
        {}
    }

    /// The counts for the commands in `sent`.
    pub fn counts(&self, sent: &BTreeSet<u64>) -> Counts {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let received: u64 = counts.values().map(|c| u64::from(*c)).sum();
        let unique = counts.len() as u64;
        let lost: Vec<u64> = sent
            .iter()
            .filter(|id| !counts.contains_key(id))
            .copied()
            .collect();
        let unexpected = counts.keys().filter(|id| !sent.contains(id)).count() as u64;
        Counts {
            sent: sent.len() as u64,
            received,
            unique,
            duplicates: received - unique,
            lost: lost.len() as u64,
            lost_ids: lost,
            unexpected,
        }
    }
}

/// What a fault test reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Commands sent.
    pub sent: u64,
    /// Results received, duplicates included.
    pub received: u64,
    /// Distinct commands answered.
    pub unique: u64,
    /// Results beyond the first for a command.
    pub duplicates: u64,
    /// Commands never answered.
    pub lost: u64,
    /// Which ones, to debug a failure.
    pub lost_ids: Vec<u64>,
    /// Results for commands never sent (must be 0).
    pub unexpected: u64,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent={} received={} unique={} duplicates={} lost={}",
            self.sent, self.received, self.unique, self.duplicates, self.lost
        )?;
        if !self.lost_ids.is_empty() {
            let shown: Vec<String> = self.lost_ids.iter().take(20).map(u64::to_string).collect();
            write!(f, " lost_ids=[{}]", shown.join(","))?;
        }
        Ok(())
    }
}

impl Counts {
    /// Prints the counts under the test's name (shown with `--nocapture`)
    /// and asserts that nothing was lost.
    #[track_caller]
    pub fn report_and_check(&self, test: &str) {
        println!("FAULT {test}: {self}");
        assert_eq!(self.unexpected, 0, "{test}: results for unknown commands");
        assert_eq!(self.lost, 0, "{test}: lost commands: {self}");
    }
}
