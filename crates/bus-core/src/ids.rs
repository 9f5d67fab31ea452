//! Fresh identifiers for conversations and correlations.

/// A new, globally unique conversation id.
pub fn new_conversation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new, globally unique correlation id.
pub fn new_correlation_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_correlation_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert_ne!(new_conversation_id(), new_conversation_id());
    }
}
