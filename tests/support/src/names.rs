//! Names that parallel tests never share.

/// `prefix` followed by `-` and 12 random hex digits.
///
/// The suffix has no dot, so the name is a valid queue, exchange or policy
/// name and a single word of a routing key (if the prefix has no dot
/// either). Tests run in parallel, and in several processes against one
/// broker, so every queue, binding and routing key a test creates must come
/// from here.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn prefix_dash_and_twelve_hex_digits() {
        let name = unique("roundtrip");
        let suffix = name.strip_prefix("roundtrip-").unwrap();
        assert_eq!(suffix.len(), 12);
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn names_are_distinct() {
        let names: HashSet<_> = (0..1000).map(|_| unique("t")).collect();
        assert_eq!(names.len(), 1000);
    }

    #[test]
    fn names_are_routing_key_words() {
        let name = unique("word");
        assert!(!name.contains('.'));
        assert!(!name.contains('*') && !name.contains('#'));
        bus_core::validate_routing_key(&format!("{name}.event")).unwrap();
    }
}
