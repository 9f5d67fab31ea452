//! `bus logger`: live GELF records from the `logs` exchange.

use bus_core::{Codec, Exchange, GelfRecord, LogLevel, Value};
use serde_json::{Map, Value as Json};

use crate::broker::Brokers;
use crate::cli::LoggerArgs;
use crate::clock;
use crate::exit::CliError;
use crate::filter;
use crate::output::{self, BAD, DIM, GOOD, KEY, Output, WARN, paint};
use crate::view::Seen;
use crate::watch::{self, Step, Watch};

/// Runs the logger; returns the exit code.
pub(crate) async fn run(
    args: LoggerArgs,
    brokers: &Brokers,
    out: &mut Output,
) -> Result<u8, CliError> {
    let patterns = filter::patterns(&args.filter)?;
    let view = Watch {
        brokers,
        tool: "bus-logger",
        bindings: patterns
            .iter()
            .map(|p| (Exchange::Logs, p.as_str().to_owned()))
            .collect(),
        limits: &args.limits,
    };
    watch::run(view, |seen| {
        let record = GelfRecord::from_bytes(&seen.body);
        if let (Some(min), Ok(record)) = (args.level, &record) {
            if !record.log_level().is_at_least(min) {
                return Ok(Step::Skipped);
            }
        }
        if out.is_json() {
            out.record(&to_json(&seen, &record))?;
        } else {
            out.text(&to_text(&seen, &record))?;
        }
        Ok(Step::Shown)
    })
    .await
}

fn level_style(level: LogLevel) -> anstyle::Style {
    match level {
        LogLevel::Emergency | LogLevel::Alert | LogLevel::Critical | LogLevel::Error => BAD,
        LogLevel::Warning => WARN,
        LogLevel::Notice => KEY,
        LogLevel::Info => GOOD,
        LogLevel::Debug => DIM,
    }
}

/// `time LEVEL service@host short message [conversation]`, then the full
/// message and any additional fields, indented.
fn to_text(seen: &Seen, record: &Result<GelfRecord, bus_core::GelfError>) -> String {
    let record = match record {
        Ok(record) => record,
        Err(error) => {
            return format!(
                "{} {} {}\n{}",
                paint(DIM, &clock::utc(clock::now())),
                paint(BAD, &format!("{:<9}", "INVALID")),
                paint(KEY, &seen.routing_key),
                output::indent_lines(&error.to_string(), 4)
            );
        }
    };
    let level = record.log_level();
    let mut line = format!(
        "{} {} {} {}",
        paint(DIM, &clock::utc(record.timestamp)),
        paint(level_style(level), &format!("{:<9}", level.name())),
        paint(KEY, &record.host),
        record.short_message
    );
    if !record.conversation_id.is_empty() {
        line.push_str(&format!(
            " {}",
            paint(DIM, &format!("[{}]", record.conversation_id))
        ));
    }
    line.push('\n');
    if !record.full_message.is_empty() {
        line.push_str(&output::indent_lines(&record.full_message, 4));
    }
    if !record.additional_fields.is_empty() {
        let fields = Json::Object(record.additional_fields.clone());
        line.push_str(&output::indent_lines(&paint(DIM, &fields.to_string()), 4));
    }
    line
}

/// The envelope, the fields a reader wants first, and the whole record.
fn to_json(seen: &Seen, record: &Result<GelfRecord, bus_core::GelfError>) -> Json {
    let mut m = Map::new();
    m.insert("kind".into(), "log".into());
    m.insert("exchange".into(), seen.exchange.clone().into());
    m.insert("routing_key".into(), seen.routing_key.clone().into());
    match record {
        Ok(r) => {
            m.insert("time".into(), clock::utc(r.timestamp).into());
            m.insert("level".into(), r.log_level().name().into());
            m.insert("host".into(), r.host.clone().into());
            m.insert("service".into(), r.logical_service.clone().into());
            m.insert("conversation_id".into(), r.conversation_id.clone().into());
            m.insert("short_message".into(), r.short_message.clone().into());
            m.insert("full_message".into(), r.full_message.clone().into());
        }
        Err(e) => {
            m.insert("invalid".into(), e.to_string().into());
        }
    }
    let payload = Codec::Json
        .decode_value(&seen.body)
        .unwrap_or_else(|_| Value::Bytes(seen.body.clone()));
    m.insert("payload".into(), payload.to_display_json());
    Json::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus_core::{LogSource, Properties};

    fn seen(body: Vec<u8>) -> Seen {
        Seen {
            exchange: "logs".into(),
            routing_key: "pong.WARNING".into(),
            delivery_tag: 1,
            redelivered: false,
            properties: Properties::default(),
            body,
        }
    }

    fn record() -> GelfRecord {
        let source = LogSource {
            service: "pong".into(),
            hostname: "box".into(),
            pid: 42,
        };
        let mut r = GelfRecord::new(
            &source,
            LogLevel::Warning,
            "Echoing",
            "line 1\nline 2",
            "c-1",
            1_700_000_000.25,
        );
        r.add_field("client", 7.into()).unwrap();
        r
    }

    #[test]
    fn a_record_as_text() {
        let r = record();
        let s = seen(r.to_bytes());
        let text = anstream::adapter::strip_str(&to_text(&s, &Ok(r))).to_string();
        assert_eq!(
            text,
            "2023-11-14T22:13:20.250Z WARNING   pong@box Echoing [c-1]\n    line 1\n    line 2\n    {\"_client\":7}\n"
        );
    }

    #[test]
    fn a_record_as_json() {
        let r = record();
        let s = seen(r.to_bytes());
        let j = to_json(&s, &Ok(r));
        assert_eq!(j["level"], "WARNING");
        assert_eq!(j["time"], "2023-11-14T22:13:20.250Z");
        assert_eq!(j["conversation_id"], "c-1");
        assert_eq!(j["payload"]["_client"], 7);
        assert_eq!(j["payload"]["_worker_pid"], 42);
    }

    #[test]
    fn a_broken_record_is_shown() {
        let s = seen(b"not json".to_vec());
        let record = GelfRecord::from_bytes(&s.body);
        let j = to_json(&s, &record);
        assert!(
            j["invalid"]
                .as_str()
                .unwrap()
                .starts_with("not a GELF record")
        );
        assert_eq!(j["payload"]["$bytes"], "bm90IGpzb24=");
        assert!(to_text(&s, &record).contains("INVALID"));
    }
}
