//! One lock for the tests that disturb the whole broker.

use std::sync::{Mutex, MutexGuard};

/// Takes the process-wide lock for tests that touch the broker globally
/// (stopping the app, lowering the memory watermark). Closing a connection
/// the test opened itself, found by its unique name, needs no lock.
///
/// Cargo runs test binaries one after another, so such tests only need to
/// exclude each other within their own binary: put them all in one test
/// binary and hold this guard for the whole test. A test that panicked while
/// holding it poisons the mutex; the next one takes it anyway, since the
/// lock protects the broker, not data in this process.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_panic_while_held() {
        let result = std::thread::spawn(|| {
            let _guard = serial();
            panic!("test failure while holding the lock");
        })
        .join();
        assert!(result.is_err());
        drop(serial());
    }
}
