//! GELF log records, as eventail publishes them on the `logs` exchange.
//!
//! See `docs/protocol.md`, section "Logs".

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value as Json};

/// A syslog severity, from `Emergency` (0, worst) to `Debug` (7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogLevel {
    /// 0: the system is unusable.
    Emergency = 0,
    /// 1: action must be taken at once.
    Alert = 1,
    /// 2: critical conditions.
    Critical = 2,
    /// 3: error conditions.
    Error = 3,
    /// 4: warning conditions.
    Warning = 4,
    /// 5: normal but significant.
    Notice = 5,
    /// 6: informational.
    Info = 6,
    /// 7: debug-level messages.
    Debug = 7,
}

impl LogLevel {
    /// All levels, worst first.
    pub const ALL: [LogLevel; 8] = [
        LogLevel::Emergency,
        LogLevel::Alert,
        LogLevel::Critical,
        LogLevel::Error,
        LogLevel::Warning,
        LogLevel::Notice,
        LogLevel::Info,
        LogLevel::Debug,
    ];

    /// The syslog number.
    pub const fn syslog(self) -> u8 {
        self as u8
    }

    /// The level of a syslog number; eventail wraps numbers above 7.
    pub const fn from_syslog(level: u8) -> LogLevel {
        LogLevel::ALL[(level % 8) as usize]
    }

    /// The upper-case name eventail uses in `_levelname` and routing keys.
    pub const fn name(self) -> &'static str {
        match self {
            LogLevel::Emergency => "EMERGENCY",
            LogLevel::Alert => "ALERT",
            LogLevel::Critical => "CRITICAL",
            LogLevel::Error => "ERROR",
            LogLevel::Warning => "WARNING",
            LogLevel::Notice => "NOTICE",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
        }
    }

    /// Whether this level is `other` or worse (a lower syslog number).
    pub fn is_at_least(self, other: LogLevel) -> bool {
        self <= other
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A log level name or number that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown log level {0:?}: expected one of EMERGENCY, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG or 0-7"
)]
pub struct UnknownLogLevel(pub String);

impl FromStr for LogLevel {
    type Err = UnknownLogLevel;

    /// Accepts the names in any case, common short forms (`WARN`, `CRIT`,
    /// `ERR`, `EMERG`) and the numbers 0 to 7.
    fn from_str(s: &str) -> Result<LogLevel, UnknownLogLevel> {
        let level = match s.to_ascii_uppercase().as_str() {
            "EMERGENCY" | "EMERG" | "0" => LogLevel::Emergency,
            "ALERT" | "1" => LogLevel::Alert,
            "CRITICAL" | "CRIT" | "2" => LogLevel::Critical,
            "ERROR" | "ERR" | "3" => LogLevel::Error,
            "WARNING" | "WARN" | "4" => LogLevel::Warning,
            "NOTICE" | "5" => LogLevel::Notice,
            "INFO" | "6" => LogLevel::Info,
            "DEBUG" | "7" => LogLevel::Debug,
            _ => return Err(UnknownLogLevel(s.to_owned())),
        };
        Ok(level)
    }
}

/// An additional field that GELF forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GelfError {
    /// `id` and `_id` are reserved by GELF.
    #[error("GELF: {0:?} can't be used as an additional field name")]
    ReservedField(String),
    /// The record is not a JSON object.
    #[error("not a GELF record: {0}")]
    Malformed(String),
}

/// Who emits a log record: the fields of `host`, `_logical_service` and
/// `_worker_pid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    /// The logical service name.
    pub service: String,
    /// The machine's host name.
    pub hostname: String,
    /// The emitting process id.
    pub pid: u32,
}

/// A GELF 1.1 record with eventail's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct GelfRecord {
    /// `short_message`.
    pub short_message: String,
    /// `full_message`.
    pub full_message: String,
    /// `level`, the syslog number.
    pub level: u8,
    /// `host`: `<service>@<hostname>`.
    pub host: String,
    /// `timestamp`, in float seconds since the Unix epoch.
    pub timestamp: f64,
    /// `_conversation_id`.
    pub conversation_id: String,
    /// `_logical_service`.
    pub logical_service: String,
    /// `_worker_pid`.
    pub worker_pid: Option<u64>,
    /// The other fields, each with its `_` prefix, in insertion order.
    pub additional_fields: Map<String, Json>,
}

const LEVELNAME: &str = "_levelname";
const CONVERSATION_ID: &str = "_conversation_id";
const LOGICAL_SERVICE: &str = "_logical_service";
const WORKER_PID: &str = "_worker_pid";

impl GelfRecord {
    /// A record emitted now-ish: the caller supplies the clock reading.
    pub fn new(
        source: &LogSource,
        level: LogLevel,
        short_message: impl Into<String>,
        full_message: impl Into<String>,
        conversation_id: impl Into<String>,
        timestamp: f64,
    ) -> GelfRecord {
        GelfRecord {
            short_message: short_message.into(),
            full_message: full_message.into(),
            level: level.syslog(),
            host: format!("{}@{}", source.service, source.hostname),
            timestamp,
            conversation_id: conversation_id.into(),
            logical_service: source.service.clone(),
            worker_pid: Some(u64::from(source.pid)),
            additional_fields: Map::new(),
        }
    }

    /// Adds a field, prefixed with `_` unless it already is. `id` and `_id`
    /// are refused, as GELF reserves them.
    pub fn add_field(&mut self, key: &str, value: Json) -> Result<(), GelfError> {
        if key == "id" || key == "_id" {
            return Err(GelfError::ReservedField(key.to_owned()));
        }
        let key = if key.starts_with('_') {
            key.to_owned()
        } else {
            format!("_{key}")
        };
        self.additional_fields.insert(key, value);
        Ok(())
    }

    /// The level, wrapped into 0-7 as eventail does for `_levelname`.
    pub fn log_level(&self) -> LogLevel {
        LogLevel::from_syslog(self.level)
    }

    /// The routing key on `logs`: `<service>.<LEVELNAME>`.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.logical_service, self.log_level().name())
    }

    /// The JSON object, fields in eventail's order. An additional field
    /// with the name of a built-in one replaces it, as in eventail.
    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("version".into(), "1.1".into());
        m.insert("short_message".into(), self.short_message.clone().into());
        m.insert("full_message".into(), self.full_message.clone().into());
        m.insert("level".into(), self.level.into());
        m.insert(LEVELNAME.into(), self.log_level().name().into());
        m.insert("host".into(), self.host.clone().into());
        m.insert("timestamp".into(), float(self.timestamp));
        m.insert(CONVERSATION_ID.into(), self.conversation_id.clone().into());
        m.insert(LOGICAL_SERVICE.into(), self.logical_service.clone().into());
        m.insert(
            WORKER_PID.into(),
            self.worker_pid.map_or(Json::Null, Json::from),
        );
        for (k, v) in &self.additional_fields {
            m.insert(k.clone(), v.clone());
        }
        Json::Object(m)
    }

    /// The body published on `logs`: the JSON object in UTF-8.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a JSON value with string keys cannot fail.
        serde_json::to_vec(&self.to_json()).unwrap_or_default()
    }

    /// Reads a record from a `logs` body. Missing fields are left empty, so
    /// that records from other GELF emitters still display.
    pub fn from_bytes(body: &[u8]) -> Result<GelfRecord, GelfError> {
        let json: Json =
            serde_json::from_slice(body).map_err(|e| GelfError::Malformed(e.to_string()))?;
        let Json::Object(mut m) = json else {
            return Err(GelfError::Malformed("expected a JSON object".into()));
        };
        let mut text = |key: &str| match m.shift_remove(key) {
            Some(Json::String(s)) => s,
            Some(Json::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let short_message = text("short_message");
        let full_message = text("full_message");
        let host = text("host");
        let conversation_id = text(CONVERSATION_ID);
        let logical_service = text(LOGICAL_SERVICE);
        let level = m
            .shift_remove("level")
            .and_then(|v| v.as_u64())
            // The raw level is kept, as eventail keeps it; only
            // `log_level()` wraps it into 0-7.
            .map_or(LogLevel::Info.syslog(), |l| {
                u8::try_from(l).unwrap_or(u8::MAX)
            });
        let timestamp = m
            .shift_remove("timestamp")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        let worker_pid = m.shift_remove(WORKER_PID).and_then(|v| v.as_u64());
        m.shift_remove("version");
        m.shift_remove(LEVELNAME);
        Ok(GelfRecord {
            short_message,
            full_message,
            level,
            host,
            timestamp,
            conversation_id,
            logical_service,
            worker_pid,
            additional_fields: m,
        })
    }
}

fn float(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> LogSource {
        LogSource {
            service: "pong".into(),
            hostname: "box".into(),
            pid: 42,
        }
    }

    #[test]
    fn levels() {
        assert_eq!(LogLevel::Warning.syslog(), 4);
        assert_eq!(LogLevel::from_syslog(3), LogLevel::Error);
        assert_eq!(LogLevel::from_syslog(9), LogLevel::Alert);
        assert_eq!("warning".parse::<LogLevel>(), Ok(LogLevel::Warning));
        assert_eq!("WARN".parse::<LogLevel>(), Ok(LogLevel::Warning));
        assert_eq!("0".parse::<LogLevel>(), Ok(LogLevel::Emergency));
        assert_eq!("Debug".parse::<LogLevel>(), Ok(LogLevel::Debug));
        assert!("loud".parse::<LogLevel>().is_err());
        for level in LogLevel::ALL {
            assert_eq!(level.name().parse::<LogLevel>(), Ok(level));
            assert_eq!(level.to_string(), level.name());
        }
        assert!(LogLevel::Error.is_at_least(LogLevel::Warning));
        assert!(LogLevel::Warning.is_at_least(LogLevel::Warning));
        assert!(!LogLevel::Info.is_at_least(LogLevel::Warning));
    }

    #[test]
    fn record_has_eventails_fields_in_order() {
        let mut r = GelfRecord::new(
            &source(),
            LogLevel::Info,
            "Echoing",
            "Sending back HI",
            "c-1",
            1700000000.25,
        );
        r.add_field("client", Json::from(7)).unwrap();
        r.add_field("_already", Json::from("x")).unwrap();
        assert_eq!(r.routing_key(), "pong.INFO");
        assert_eq!(
            String::from_utf8(r.to_bytes()).unwrap(),
            r#"{"version":"1.1","short_message":"Echoing","full_message":"Sending back HI","level":6,"_levelname":"INFO","host":"pong@box","timestamp":1700000000.25,"_conversation_id":"c-1","_logical_service":"pong","_worker_pid":42,"_client":7,"_already":"x"}"#
        );
    }

    #[test]
    fn reserved_fields_are_refused() {
        let mut r = GelfRecord::new(&source(), LogLevel::Info, "s", "", "", 0.0);
        assert_eq!(
            r.add_field("id", Json::Null),
            Err(GelfError::ReservedField("id".into()))
        );
        assert_eq!(
            r.add_field("_id", Json::Null),
            Err(GelfError::ReservedField("_id".into()))
        );
        assert!(r.add_field("idx", Json::Null).is_ok());
    }

    #[test]
    fn additional_field_overrides_builtin_like_eventail() {
        let mut r = GelfRecord::new(&source(), LogLevel::Info, "s", "", "c", 0.0);
        r.add_field("conversation_id", Json::from("other")).unwrap();
        let json = r.to_json();
        assert_eq!(json["_conversation_id"], "other");
        assert_eq!(json.as_object().unwrap().len(), 10);
    }

    #[test]
    fn parse_round_trip() {
        let mut r = GelfRecord::new(&source(), LogLevel::Alert, "boom", "trace", "c-9", 12.5);
        r.add_field("k", Json::from("v")).unwrap();
        let parsed = GelfRecord::from_bytes(&r.to_bytes()).unwrap();
        assert_eq!(parsed, r);
        assert!(GelfRecord::from_bytes(b"[1]").is_err());
        assert!(GelfRecord::from_bytes(b"not json").is_err());
        let raw = GelfRecord::from_bytes(br#"{"short_message": "x", "level": 9}"#).unwrap();
        assert_eq!((raw.level, raw.log_level()), (9, LogLevel::Alert));
        let sparse = GelfRecord::from_bytes(br#"{"short_message": "x"}"#).unwrap();
        assert_eq!(sparse.short_message, "x");
        assert_eq!(sparse.log_level(), LogLevel::Info);
    }
}
