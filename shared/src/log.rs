//! What the request log line says about the request. A leaf.

/// Names the user the current request is for in its log line (an id, never a credential).
pub fn record_user(user_id: &str) {
    tracing::Span::current().record("user_id", user_id);
}
