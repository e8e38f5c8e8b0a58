//! CloudWatch metrics through the Embedded Metric Format: one JSON line on
//! stdout per count, which CloudWatch Logs turns into a metric. No API call
//! on the request path. A leaf.
//!
//! Each metric is published twice: without dimensions (the whole stack: the
//! alarms watch these) and by `Function` (the dashboard's breakdown).
//! The namespace is `METRICS_NAMESPACE` (the template sets the stack's name).

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    LoginSucceeded,
    /// A wrong password or an unknown name, whatever the account.
    LoginFailed,
    /// A name locked by its failures (counted when the lock begins).
    LoginLocked,
    /// A refresh token presented again after its grace window: a session revoked.
    RefreshReuseDetected,
    /// A wrong second-factor code at login.
    MfaFailed,
    /// A `503`: a dependency unreachable or throttling.
    Unavailable,
    /// An audit event that could not be stored (the request went on).
    AuditWriteFailed,
    /// A breached-password check that could not be made (timeout, error): the password went through unchecked.
    BreachedCheckFailed,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::LoginSucceeded => "LoginSucceeded",
            Metric::LoginFailed => "LoginFailed",
            Metric::LoginLocked => "LoginLocked",
            Metric::RefreshReuseDetected => "RefreshReuseDetected",
            Metric::MfaFailed => "MfaFailed",
            Metric::Unavailable => "Unavailable",
            Metric::AuditWriteFailed => "AuditWriteFailed",
            Metric::BreachedCheckFailed => "BreachedCheckFailed",
        }
    }
}

/// The namespace when `METRICS_NAMESPACE` is not set (locally).
pub const DEFAULT_NAMESPACE: &str = "lambda-jwt-auth";

/// Counts one `metric`: writes its EMF line to stdout, inside a Lambda
/// runtime only (deployed, or `cargo lambda watch`): elsewhere (the admin
/// tool, tests) there is no CloudWatch to read it.
pub fn count(metric: Metric) {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if env("AWS_LAMBDA_RUNTIME_API").is_none() {
        return;
    }
    let namespace = env("METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    let function = env("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "local".into());
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let line = emf_line(metric, &namespace, &function, millis);
    // One line, written under stdout's lock, so it never interleaves with a log line.
    println!("{line}");
}

/// The EMF document that counts one `metric` at `millis`.
pub fn emf_line(metric: Metric, namespace: &str, function: &str, millis: u64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": millis,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [[], ["Function"]],
                "Metrics": [{"Name": metric.name(), "Unit": "Count"}],
            }],
        },
        "Function": function,
        metric.name(): 1,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_count_is_an_emf_document_cloudwatch_can_read() {
        let line = emf_line(Metric::LoginFailed, "my-stack", "my-stack-Login-1", 1_700_000_000_123);
        assert!(!line.contains('\n'));
        let doc: Value = serde_json::from_str(&line).unwrap();
        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_123u64);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "my-stack");
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([{"Name": "LoginFailed", "Unit": "Count"}])
        );
        // Every dimension named is a member of the root, and so is the metric.
        for set in directive["Dimensions"].as_array().unwrap() {
            for key in set.as_array().unwrap() {
                assert!(doc[key.as_str().unwrap()].is_string(), "{key}");
            }
        }
        assert_eq!(directive["Dimensions"], serde_json::json!([[], ["Function"]]));
        assert_eq!(
            (&doc["Function"], &doc["LoginFailed"]),
            (&"my-stack-Login-1".into(), &1.into())
        );
    }

    #[test]
    fn every_metric_has_its_own_name() {
        let all = [
            Metric::LoginSucceeded,
            Metric::LoginFailed,
            Metric::LoginLocked,
            Metric::RefreshReuseDetected,
            Metric::MfaFailed,
            Metric::Unavailable,
            Metric::AuditWriteFailed,
            Metric::BreachedCheckFailed,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), all.len());
    }
}
