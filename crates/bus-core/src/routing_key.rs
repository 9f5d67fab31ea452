//! Routing keys and topic patterns, with RabbitMQ's exact topic semantics.
//!
//! See `docs/protocol.md`, section "Routing keys".

use std::fmt;

/// The longest routing key AMQP 0-9-1 can carry: a short string of 255 bytes.
pub const MAX_ROUTING_KEY_BYTES: usize = 255;

/// Why a routing key or a topic pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingKeyError {
    /// The key is the empty string.
    #[error("routing key is empty")]
    Empty,
    /// The key does not fit in an AMQP short string.
    #[error("routing key is {len} bytes long, the limit is {MAX_ROUTING_KEY_BYTES}")]
    TooLong {
        /// The length of the refused key, in bytes.
        len: usize,
    },
}

/// Checks that `key` can be used as a routing key on the bus: non-empty and
/// at most [`MAX_ROUTING_KEY_BYTES`] bytes.
///
/// ```
/// use bus_core::{validate_routing_key, RoutingKeyError};
/// assert!(validate_routing_key("pong.EchoMessage").is_ok());
/// assert_eq!(validate_routing_key(""), Err(RoutingKeyError::Empty));
/// ```
pub fn validate_routing_key(key: &str) -> Result<(), RoutingKeyError> {
    if key.is_empty() {
        return Err(RoutingKeyError::Empty);
    }
    if key.len() > MAX_ROUTING_KEY_BYTES {
        return Err(RoutingKeyError::TooLong { len: key.len() });
    }
    Ok(())
}

/// A binding pattern for a topic exchange: words separated by `.`, where the
/// word `*` stands for exactly one word and `#` for zero or more words.
///
/// Matching follows RabbitMQ, including its edge cases:
///
/// ```
/// use bus_core::TopicPattern;
/// let p = |s: &str| TopicPattern::new(s).unwrap();
/// assert!(p("#").matches(""));
/// assert!(p("a.#").matches("a"));
/// assert!(!p("*.b").matches("b"));
/// assert!(p("a.*.#").matches("a.x"));
/// assert!(p("a.*.b").matches("a..b"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPattern(String);

impl TopicPattern {
    /// Validates `pattern` with the same rules as a routing key.
    pub fn new(pattern: &str) -> Result<TopicPattern, RoutingKeyError> {
        validate_routing_key(pattern)?;
        Ok(TopicPattern(pattern.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a message published with routing key `key` reaches a queue
    /// bound with this pattern.
    pub fn matches(&self, key: &str) -> bool {
        topic_matches(&self.0, key)
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits a key into words the way RabbitMQ does: the empty key has no
/// words at all, while every `.` separates two words, which may be empty.
fn words(key: &str) -> Vec<&str> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    }
}

/// Topic matching as a dynamic programme over (pattern word, key word)
/// positions, so that patterns with many `#` stay linear in practice.
fn topic_matches(pattern: &str, key: &str) -> bool {
    let pattern = words(pattern);
    let key = words(key);
    // reachable[j]: the pattern words consumed so far can match exactly the
    // first j key words.
    let mut reachable = vec![false; key.len() + 1];
    reachable[0] = true;
    for word in &pattern {
        let mut next = vec![false; key.len() + 1];
        match *word {
            "#" => {
                // `#` takes any number of words from any reachable position.
                let mut any = false;
                for j in 0..=key.len() {
                    any |= reachable[j];
                    next[j] = any;
                }
            }
            "*" => {
                next[1..].copy_from_slice(&reachable[..key.len()]);
            }
            literal => {
                for j in 0..key.len() {
                    next[j + 1] = reachable[j] && key[j] == literal;
                }
            }
        }
        reachable = next;
    }
    reachable[key.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(pattern: &str, key: &str) -> bool {
        TopicPattern::new(pattern).unwrap().matches(key)
    }

    #[test]
    fn validation() {
        assert_eq!(validate_routing_key(""), Err(RoutingKeyError::Empty));
        assert!(validate_routing_key("a").is_ok());
        assert!(validate_routing_key(&"x".repeat(255)).is_ok());
        assert_eq!(
            validate_routing_key(&"x".repeat(256)),
            Err(RoutingKeyError::TooLong { len: 256 })
        );
        // The limit is in bytes, not characters.
        assert_eq!(
            validate_routing_key(&"é".repeat(128)),
            Err(RoutingKeyError::TooLong { len: 256 })
        );
        assert!(TopicPattern::new("").is_err());
    }

    #[test]
    fn rabbitmq_edge_cases() {
        assert!(topic_matches("#", ""));
        assert!(!topic_matches("*", ""));
        assert!(topic_matches("", ""));
        assert!(matches("a.#", "a"));
        assert!(matches("a.#", "a.b.c"));
        assert!(!matches("*.b", "b"));
        assert!(matches("*.b", "a.b"));
        assert!(matches("a.*.#", "a.x"));
        assert!(matches("a.*.#", "a.x.y.z"));
        assert!(!matches("a.*.#", "a"));
        assert!(matches("a.*.b", "a..b"));
        assert!(matches("a..b", "a..b"));
        assert!(!matches("a.b", "a..b"));
        assert!(matches("#.b", "b"));
        assert!(matches("#.#", "a"));
        assert!(matches("#.*.#", "a"));
        assert!(!matches("#.*.#", ""));
        assert!(matches("*", "x"));
        assert!(!matches("*", "a.b"));
        assert!(matches("*.*", "."));
        assert!(matches("#", "."));
        assert!(!matches("a*", "ab"));
        assert!(matches("a*", "a*"));
        assert!(matches("pong.EchoMessage", "pong.EchoMessage"));
        assert!(!matches("pong.EchoMessage", "pong.EchoMessages"));
    }

    /// The plain recursive definition, kept as simple as possible: the
    /// reference the optimised matcher is tested against.
    fn reference(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => {
                reference(rest, key) || (!key.is_empty() && reference(pattern, &key[1..]))
            }
            Some((&"*", rest)) => !key.is_empty() && reference(rest, &key[1..]),
            Some((word, rest)) => key.first() == Some(word) && reference(rest, &key[1..]),
        }
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof!["", "a", "b", "ab"].prop_map(String::from)
    }

    fn pattern_word() -> impl Strategy<Value = String> {
        prop_oneof![word(), Just("*".to_owned()), Just("#".to_owned())]
    }

    fn join(words: Vec<String>) -> String {
        words.join(".")
    }

    proptest! {
        #[test]
        fn matcher_agrees_with_reference(
            pattern in proptest::collection::vec(pattern_word(), 0..6).prop_map(join),
            key in proptest::collection::vec(word(), 0..6).prop_map(join),
        ) {
            let expected = reference(&words(&pattern), &words(&key));
            prop_assert_eq!(topic_matches(&pattern, &key), expected);
        }

        #[test]
        fn a_key_matches_itself_and_hash(key in proptest::collection::vec(word(), 1..6).prop_map(join)) {
            prop_assume!(!key.contains('*') && !key.contains('#'));
            prop_assert!(topic_matches(&key, &key));
            prop_assert!(topic_matches("#", &key));
        }
    }
}
