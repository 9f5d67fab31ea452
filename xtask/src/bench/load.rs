//! Load runs: `bus bench --json` against whatever pong is running.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The command every candidate answers.
pub(crate) const COMMAND: &str = "pong.EchoMessage";
/// Its payload.
pub(crate) const PAYLOAD: &str = r#"{"message": "hello, bus"}"#;
/// Seconds before a command counts as timed out.
const TIMEOUT_SECS: &str = "10";

/// What one `bus bench` run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// Results per second.
    pub(crate) throughput: f64,
    /// Results received in time.
    pub(crate) results: u64,
    /// Median round trip, ms.
    pub(crate) p50: f64,
    /// 99th percentile round trip, ms.
    pub(crate) p99: f64,
    /// Error results and nacks.
    pub(crate) errors: u64,
    /// Commands without a result in time.
    pub(crate) timeouts: u64,
}

/// Runs `bus bench` with the broker URL in `$AMQP_URL`.
pub(crate) struct Load {
    pub(crate) bus: PathBuf,
    pub(crate) url: String,
}

impl Load {
    /// `bus --json bench pong.EchoMessage --data PAYLOAD ARGS...`.
    pub(crate) fn run(&self, args: &[&str]) -> Result<Outcome, String> {
        let out = Command::new(&self.bus)
            .args(["--json", "bench", COMMAND, "--data", PAYLOAD])
            .args(["--timeout", TIMEOUT_SECS])
            .args(args)
            .env("AMQP_URL", &self.url)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bus.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // 0: all good; 1 and 2: some errors or timeouts, with a report.
        if !matches!(out.status.code(), Some(0..=2)) {
            return Err(format!(
                "bus bench {} failed ({}): {}",
                args.join(" "),
                out.status,
                stderr.trim()
            ));
        }
        let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "bus bench printed no JSON report ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        parse(&json).ok_or_else(|| format!("unexpected bus bench report: {json}"))
    }
}

fn parse(json: &Value) -> Option<Outcome> {
    Some(Outcome {
        throughput: json["throughput"].as_f64()?,
        results: json["results"].as_u64()?,
        p50: json["latency_ms"]["p50"].as_f64()?,
        p99: json["latency_ms"]["p99"].as_f64()?,
        errors: json["errors"].as_u64()?,
        timeouts: json["timeouts"].as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_report_of_bus_bench() {
        let json = serde_json::json!({
            "throughput": 5000.5, "results": 100, "errors": 1, "timeouts": 2,
            "latency_ms": {"p50": 0.5, "p90": 0.7, "p99": 1.5, "p99.9": 2.0, "max": 3.0},
        });
        let o = parse(&json).unwrap();
        assert_eq!(
            (o.throughput, o.results, o.errors, o.timeouts),
            (5000.5, 100, 1, 2)
        );
        assert_eq!((o.p50, o.p99), (0.5, 1.5));
        assert!(parse(&serde_json::json!({"throughput": 1.0})).is_none());
    }
}
