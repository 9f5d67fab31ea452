//! Selecting messages: payload field filters and topic patterns.

use bus_core::{TopicPattern, Value};

use crate::exit::CliError;

/// `field=value`: keeps payloads whose top-level `field` has this value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldFilter {
    field: String,
    /// The value as given.
    text: String,
    /// The value read as JSON, when it is JSON (`123`, `true`, `"a"`).
    json: Option<serde_json::Value>,
}

impl FieldFilter {
    /// Parses `field=value`.
    pub(crate) fn parse(s: &str) -> Result<FieldFilter, String> {
        let (field, text) = s
            .split_once('=')
            .ok_or_else(|| format!("expected FIELD=VALUE, got {s:?}"))?;
        if field.is_empty() {
            return Err(format!("empty field name in {s:?}"));
        }
        Ok(FieldFilter {
            field: field.to_owned(),
            text: text.to_owned(),
            json: serde_json::from_str(text).ok(),
        })
    }

    /// Whether `payload` has the field with this value. `client_id=123`
    /// matches both the integer 123 and the text "123", since a command
    /// line cannot tell them apart.
    pub(crate) fn matches(&self, payload: &Value) -> bool {
        let Some(found) = payload.get(&self.field) else {
            return false;
        };
        if found.as_str() == Some(self.text.as_str()) {
            return true;
        }
        self.json
            .as_ref()
            .is_some_and(|json| &found.to_display_json() == json)
    }
}

/// Whether `payload` passes every filter.
pub(crate) fn keep(filters: &[FieldFilter], payload: &Value) -> bool {
    filters.iter().all(|f| f.matches(payload))
}

/// Parses topic patterns, naming the bad one.
pub(crate) fn patterns(raw: &[String]) -> Result<Vec<TopicPattern>, CliError> {
    raw.iter()
        .map(|p| {
            TopicPattern::new(p).map_err(|source| CliError::RoutingKey {
                what: "pattern",
                key: p.clone(),
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Value {
        Value::map([
            ("client_id", Value::from(123)),
            ("name", Value::from("ann")),
            ("code", Value::from("007")),
            ("ok", Value::Bool(true)),
        ])
    }

    #[test]
    fn values_match_as_json_or_as_text() {
        let p = payload();
        assert!(FieldFilter::parse("client_id=123").unwrap().matches(&p));
        assert!(FieldFilter::parse("name=ann").unwrap().matches(&p));
        assert!(FieldFilter::parse("name=\"ann\"").unwrap().matches(&p));
        assert!(FieldFilter::parse("code=007").unwrap().matches(&p));
        assert!(FieldFilter::parse("ok=true").unwrap().matches(&p));
        assert!(!FieldFilter::parse("client_id=124").unwrap().matches(&p));
        assert!(!FieldFilter::parse("missing=1").unwrap().matches(&p));
        assert!(!FieldFilter::parse("k=1").unwrap().matches(&Value::from(1)));
    }

    #[test]
    fn every_filter_must_match() {
        let p = payload();
        let both = [
            FieldFilter::parse("client_id=123").unwrap(),
            FieldFilter::parse("name=bob").unwrap(),
        ];
        assert!(!keep(&both, &p));
        assert!(keep(&both[..1], &p));
        assert!(keep(&[], &p));
    }

    #[test]
    fn malformed_filters_are_refused() {
        assert!(FieldFilter::parse("novalue").is_err());
        assert!(FieldFilter::parse("=1").is_err());
        assert_eq!(
            FieldFilter::parse("a=b=c").unwrap().text,
            "b=c",
            "only the first = splits"
        );
    }

    #[test]
    fn patterns_are_validated() {
        assert_eq!(patterns(&["a.#".into()]).unwrap().len(), 1);
        let err = patterns(&["ok".into(), String::new()]).unwrap_err();
        assert!(err.to_string().starts_with("invalid pattern \"\""), "{err}");
    }
}
