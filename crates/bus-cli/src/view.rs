//! A message as the tools show it: classified by the protocol's rules,
//! payload decoded, rendered as NDJSON or as indented text.

use bus_core::{
    CONVERSATION_ID_HEADER, Codec, DecodeError, DeliveryInfo, Envelope, Exchange, MessageKind,
    Meta, Properties, Status, Value,
};
use serde_json::{Map, Value as Json};

use crate::clock;
use crate::output::{self, BAD, COMMAND, CONFIG, DIM, EVENT, GOOD, KEY, WARN, paint};

/// The header RabbitMQ puts on a dead letter: the exchange it was first
/// published to.
pub(crate) const FIRST_DEATH_EXCHANGE: &str = "x-first-death-exchange";

/// A message taken from the broker (delivered, got, or a result).
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) delivery_tag: u64,
    pub(crate) redelivered: bool,
    pub(crate) properties: Properties,
    pub(crate) body: Vec<u8>,
}

/// What the protocol makes of a [`Seen`] message.
pub(crate) struct View<'a> {
    pub(crate) seen: &'a Seen,
    /// The envelope and meta, or why the message breaks the protocol.
    pub(crate) envelope: Result<(Envelope, Meta), String>,
    /// The decoded payload.
    pub(crate) payload: Result<Value, DecodeError>,
}

impl Seen {
    /// Classifies and decodes. A dead letter, delivered from a dead-letter
    /// exchange, is classified by the bus exchange it first died from.
    pub(crate) fn view(&self) -> View<'_> {
        let first_death = self
            .properties
            .headers
            .get(FIRST_DEATH_EXCHANGE)
            .and_then(Value::as_str)
            .filter(|e| {
                Exchange::from_name(&self.exchange).is_none() && Exchange::from_name(e).is_some()
            });
        let info = DeliveryInfo {
            exchange: first_death.unwrap_or(&self.exchange),
            routing_key: &self.routing_key,
            delivery_tag: self.delivery_tag,
            redelivered: self.redelivered,
        };
        View {
            seen: self,
            envelope: Envelope::from_delivery(info, &self.properties).map_err(|e| e.to_string()),
            payload: self.codec().decode_value(&self.body),
        }
    }

    /// The codec the body is in, by eventail's rule.
    pub(crate) fn codec(&self) -> Codec {
        Codec::for_content_type(self.properties.content_type.as_deref())
    }

    /// The `conversation_id` header as text, if any.
    pub(crate) fn conversation_id(&self) -> Option<&str> {
        self.properties
            .headers
            .get(CONVERSATION_ID_HEADER)
            .and_then(Value::as_str)
    }
}

fn opt<T: Into<Json>>(v: Option<T>) -> Json {
    v.map_or(Json::Null, Into::into)
}

fn headers_json(headers: &std::collections::BTreeMap<String, Value>) -> Json {
    Json::Object(
        headers
            .iter()
            .map(|(k, v)| (k.clone(), v.to_display_json()))
            .collect(),
    )
}

impl View<'_> {
    /// `event`, `command`, `result`, `configuration`, `log` or `invalid`.
    pub(crate) fn kind_name(&self) -> &'static str {
        match &self.envelope {
            Ok((env, _)) => match env.kind {
                MessageKind::Event => "event",
                MessageKind::Command => "command",
                MessageKind::Result => "result",
                MessageKind::Configuration => "configuration",
                MessageKind::Log => "log",
            },
            Err(_) => "invalid",
        }
    }

    /// The conversation id, or `""`.
    pub(crate) fn conversation_id(&self) -> &str {
        match &self.envelope {
            Ok((env, _)) => &env.conversation_id,
            Err(_) => self.seen.conversation_id().unwrap_or(""),
        }
    }

    /// One NDJSON object: every envelope field, the properties, the other
    /// headers and the payload in its display form.
    pub(crate) fn to_json(&self) -> Json {
        let p = &self.seen.properties;
        let mut m = Map::new();
        m.insert("kind".into(), self.kind_name().into());
        if let Err(reason) = &self.envelope {
            m.insert("invalid".into(), reason.clone().into());
        }
        m.insert("exchange".into(), self.seen.exchange.clone().into());
        m.insert("routing_key".into(), self.seen.routing_key.clone().into());
        let (conversation, correlation, reply_to, status, headers) = match &self.envelope {
            Ok((env, meta)) => (
                Json::from(env.conversation_id.clone()),
                opt(env.correlation_id.clone()),
                opt(env.reply_to.clone()),
                opt(env.status.as_ref().map(|s| s.as_str().to_owned())),
                headers_json(&meta.headers),
            ),
            Err(_) => (
                opt(self.seen.conversation_id().map(str::to_owned)),
                opt(p.correlation_id.clone()),
                opt(p.reply_to.clone()),
                Json::Null,
                headers_json(&p.headers),
            ),
        };
        m.insert("conversation_id".into(), conversation);
        m.insert("correlation_id".into(), correlation);
        m.insert("reply_to".into(), reply_to);
        m.insert("status".into(), status);
        m.insert("content_type".into(), opt(p.content_type.clone()));
        m.insert("delivery_mode".into(), opt(p.delivery_mode));
        m.insert("timestamp".into(), opt(p.timestamp));
        m.insert("expiration".into(), opt(p.expiration.clone()));
        m.insert("user_id".into(), opt(p.user_id.clone()));
        m.insert("app_id".into(), opt(p.app_id.clone()));
        m.insert("message_id".into(), opt(p.message_id.clone()));
        m.insert("delivery_tag".into(), self.seen.delivery_tag.into());
        m.insert("redelivered".into(), self.seen.redelivered.into());
        m.insert("headers".into(), headers);
        match &self.payload {
            Ok(v) => {
                m.insert("payload".into(), v.to_display_json());
            }
            Err(e) => {
                m.insert("payload".into(), Json::Null);
                m.insert("payload_error".into(), e.to_string().into());
                m.insert(
                    "body".into(),
                    Value::Bytes(self.seen.body.clone()).to_display_json(),
                );
            }
        }
        Json::Object(m)
    }

    /// The heading: kind (with the status of a result) and routing key.
    fn heading(&self) -> String {
        let kind = self.kind_name();
        let style = match &self.envelope {
            Ok((env, _)) => match env.kind {
                MessageKind::Event => EVENT,
                MessageKind::Command => COMMAND,
                MessageKind::Result => match env.status {
                    Some(Status::Success) => GOOD,
                    _ => BAD,
                },
                MessageKind::Configuration | MessageKind::Log => CONFIG,
            },
            Err(_) => BAD,
        };
        let status = match &self.envelope {
            Ok((env, _)) => env
                .status
                .as_ref()
                .map(|s| format!(" {}", s.as_str()))
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        format!(
            "{} {}\n",
            paint(style, &format!("{kind}{status}")),
            paint(KEY, &self.seen.routing_key)
        )
    }

    /// The indented text form. `payload_note` replaces the payload (e.g.
    /// "saved as FILE").
    pub(crate) fn to_text(&self, payload_note: Option<&str>) -> String {
        let mut out = self.heading();
        let field = |out: &mut String, name: &str, value: &str| {
            if value.is_empty() {
                out.push_str(&format!("  {}\n", paint(DIM, name)));
            } else {
                out.push_str(&format!(
                    "  {} {value}\n",
                    paint(DIM, &format!("{name:<16}"))
                ));
            }
        };
        if let Err(reason) = &self.envelope {
            field(&mut out, "invalid", &paint(WARN, reason));
        }
        let p = &self.seen.properties;
        let conversation = self.conversation_id();
        if !conversation.is_empty() {
            field(&mut out, "conversation_id", conversation);
        }
        if let Some(v) = p.correlation_id.as_deref().filter(|v| !v.is_empty()) {
            field(&mut out, "correlation_id", v);
        }
        if let Some(v) = p.reply_to.as_deref().filter(|v| !v.is_empty()) {
            field(&mut out, "reply_to", v);
        }
        field(&mut out, "meta", &self.meta_line());
        let headers = match &self.envelope {
            Ok((_, meta)) => &meta.headers,
            Err(_) => &p.headers,
        };
        if !headers.is_empty() {
            field(&mut out, "headers", "");
            out.push_str(&output::indented_json(&headers_json(headers), 4));
        }
        match (payload_note, &self.payload) {
            (Some(note), _) => field(&mut out, "payload", note),
            (None, Ok(value)) => {
                field(&mut out, "payload", "");
                out.push_str(&output::indented_json(&value.to_display_json(), 4));
            }
            (None, Err(e)) => {
                field(&mut out, "payload", &paint(WARN, &e.to_string()));
                out.push_str(&output::indented_json(
                    &Value::Bytes(self.seen.body.clone()).to_display_json(),
                    4,
                ));
            }
        }
        out.push('\n');
        out
    }

    /// `exchange=events delivery_tag=1 ...`: the broker's metadata and the
    /// properties not shown elsewhere.
    fn meta_line(&self) -> String {
        let s = self.seen;
        let p = &s.properties;
        let mut parts = vec![
            format!("exchange={}", s.exchange),
            format!("delivery_tag={}", s.delivery_tag),
            format!("redelivered={}", s.redelivered),
        ];
        let mut add = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        };
        add("content_type", p.content_type.clone());
        add("delivery_mode", p.delivery_mode.map(|m| m.to_string()));
        add(
            "timestamp",
            p.timestamp
                .map(|t| clock::utc(t as f64).replace(".000Z", "Z")),
        );
        add("expiration", p.expiration.clone());
        add("user_id", p.user_id.clone());
        add("app_id", p.app_id.clone());
        add("message_id", p.message_id.clone());
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(text: &str) -> String {
        anstream::adapter::strip_str(text).to_string()
    }

    fn seen(exchange: &str, headers: &[(&str, Value)], body: Vec<u8>) -> Seen {
        let mut properties = Properties {
            content_type: Some("application/json".into()),
            delivery_mode: Some(2),
            ..Properties::default()
        };
        for (k, v) in headers {
            properties.headers.insert((*k).into(), v.clone());
        }
        Seen {
            exchange: exchange.into(),
            routing_key: "billing.InvoicePaid".into(),
            delivery_tag: 3,
            redelivered: false,
            properties,
            body,
        }
    }

    #[test]
    fn an_event_as_json() {
        let s = seen(
            "events",
            &[
                ("conversation_id", Value::from("c-1")),
                ("x-extra", Value::from(1)),
            ],
            br#"{"id":7}"#.to_vec(),
        );
        let j = s.view().to_json();
        assert_eq!(j["kind"], "event");
        assert_eq!(j["conversation_id"], "c-1");
        assert_eq!(j["correlation_id"], Json::Null);
        assert_eq!(j["delivery_mode"], 2);
        assert_eq!(j["headers"], json!({"x-extra": 1}));
        assert_eq!(j["payload"], json!({"id": 7}));
        assert!(j.get("invalid").is_none());
    }

    #[test]
    fn invalid_and_undecodable_messages_are_shown_not_dropped() {
        let s = seen("events", &[], b"{oops".to_vec());
        let v = s.view();
        assert_eq!(v.kind_name(), "invalid");
        let j = v.to_json();
        assert!(j["invalid"].as_str().unwrap().contains("conversation_id"));
        assert_eq!(j["payload"], Json::Null);
        assert!(j["payload_error"].as_str().unwrap().contains("JSON"));
        assert_eq!(j["body"]["$bytes"], "e29vcHM=");
        let text = plain(&v.to_text(None));
        assert!(text.starts_with("invalid billing.InvoicePaid\n"), "{text}");
    }

    #[test]
    fn a_dead_letter_is_classified_by_its_first_exchange() {
        let s = seen(
            "my-dlx",
            &[
                ("conversation_id", Value::from("c-1")),
                ("x-first-death-exchange", Value::from("events")),
            ],
            b"{}".to_vec(),
        );
        let j = s.view().to_json();
        assert_eq!(j["kind"], "event");
        assert_eq!(j["exchange"], "my-dlx");
        let elsewhere = seen(
            "my-dlx",
            &[
                ("conversation_id", Value::from("c-1")),
                ("x-first-death-exchange", Value::from("other")),
            ],
            b"{}".to_vec(),
        );
        assert_eq!(elsewhere.view().kind_name(), "invalid");
    }

    #[test]
    fn a_result_as_text() {
        let mut s = seen(
            "commands",
            &[
                ("conversation_id", Value::from("c-1")),
                ("status", Value::from("error")),
            ],
            br#"{"reason":"no"}"#.to_vec(),
        );
        s.properties.correlation_id = Some("k-9".into());
        s.properties.timestamp = Some(1_700_000_000);
        let text = plain(&s.view().to_text(None));
        assert!(
            text.starts_with("result error billing.InvoicePaid\n"),
            "{text}"
        );
        assert!(text.contains("  correlation_id   k-9\n"), "{text}");
        assert!(text.contains("timestamp=2023-11-14T22:13:20Z"), "{text}");
        assert!(text.contains("      \"reason\": \"no\"\n"), "{text}");
        let saved = plain(&s.view().to_text(Some("saved as x.json")));
        assert!(
            saved.contains("  payload          saved as x.json\n"),
            "{saved}"
        );
    }
}
