//! Broker-wide faults that always end, even when the test that caused
//! them panics: a stopped application, a memory alarm.
//!
//! Both disturb every client of the broker: hold [`crate::serial`] while
//! one is alive, and keep such tests in the one test binary that does.

use std::time::{Duration, Instant};

use crate::rabbitmqctl;

/// RabbitMQ's default memory high watermark, restored by [`MemoryAlarm`].
pub const DEFAULT_MEMORY_WATERMARK: f64 = 0.4;

/// A watermark so low that any node is over it at once.
const ALARM_WATERMARK: f64 = 0.000_000_1;

/// How long the broker may take to report the alarm.
const ALARM_TIMEOUT: Duration = Duration::from_secs(30);

/// The broker's application, stopped (`rabbitmqctl stop_app`) for as long
/// as this guard lives; started again, and waited for, when it drops.
#[derive(Debug)]
#[must_use = "the broker starts again when the guard drops"]
pub struct StoppedApp {
    running: bool,
}

impl StoppedApp {
    /// Stops the application. On failure the guard is dropped, which
    /// starts it again in case the stop went half way.
    pub fn stop() -> Result<StoppedApp, String> {
        let guard = StoppedApp { running: false };
        rabbitmqctl::stop_app()?;
        Ok(guard)
    }

    /// Starts the application again and waits until it accepts AMQP.
    pub fn start(mut self) -> Result<(), String> {
        self.running = true;
        rabbitmqctl::start_app().map(drop)
    }
}

impl Drop for StoppedApp {
    fn drop(&mut self) {
        if self.running {
            return;
        }
        if let Err(e) = rabbitmqctl::start_app() {
            eprintln!("warning: cannot start the broker again: {e}");
        }
    }
}

/// A memory alarm: the watermark is set so low that the broker blocks
/// every publishing connection, until the guard drops (or [`clear`]
/// is called) and the default watermark is set again.
///
/// [`clear`]: MemoryAlarm::clear
#[derive(Debug)]
#[must_use = "the alarm clears when the guard drops"]
pub struct MemoryAlarm {
    cleared: bool,
}

impl MemoryAlarm {
    /// Raises the alarm, and returns once the broker reports it.
    pub fn raise() -> Result<MemoryAlarm, String> {
        let guard = MemoryAlarm { cleared: false };
        rabbitmqctl::set_vm_memory_high_watermark(ALARM_WATERMARK)?;
        let deadline = Instant::now() + ALARM_TIMEOUT;
        while !rabbitmqctl::run(&["eval", "rabbit_alarm:get_alarms()."])?.contains("memory") {
            if Instant::now() >= deadline {
                return Err(format!("no memory alarm within {ALARM_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(guard)
    }

    /// Clears the alarm, reporting a failure.
    pub fn clear(mut self) -> Result<(), String> {
        self.cleared = true;
        rabbitmqctl::set_vm_memory_high_watermark(DEFAULT_MEMORY_WATERMARK).map(drop)
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        if self.cleared {
            return;
        }
        if let Err(e) = rabbitmqctl::set_vm_memory_high_watermark(DEFAULT_MEMORY_WATERMARK) {
            eprintln!("warning: cannot clear the memory alarm: {e}");
        }
    }
}
