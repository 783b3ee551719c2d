//! Business metrics in CloudWatch's Embedded Metric Format (EMF): one JSON line on standard
//! output per record, which CloudWatch Logs turns into metrics with no API call on the request
//! path. Each record names one metric, counted once, with the function and (for most) an
//! outcome as dimensions; never user data.
//!
//! Weighed: `metrics_cloudwatch_embedded` (maintained, 0.10) is a global recorder for the
//! `metrics` facade that collects counters and flushes them after each invocation through its
//! own `run` or a tower service around the handler: it would replace `lambda_http::run` in five
//! mains and add a global recorder for a dozen counters. Powertools has no Rust metrics utility.
//! The format is one page of specification, so this is one small module.

use serde_json::{Map, Value, json};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The namespace when `METRICS_NAMESPACE` is not set (a local run, a test).
pub const DEFAULT_NAMESPACE: &str = "UsersApi";

/// What a function reports to CloudWatch: the namespace (the template's `MetricsNamespace`) and
/// the function's short name (`create-user`, ...) as the `Function` dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    namespace: String,
    function: &'static str,
}

/// A counted metric's unit, as EMF names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
        }
    }
}

impl Metrics {
    pub fn new(namespace: impl Into<String>, function: &'static str) -> Self {
        Self {
            namespace: namespace.into(),
            function,
        }
    }

    /// From `METRICS_NAMESPACE` (else [`DEFAULT_NAMESPACE`]).
    pub fn from_env(function: &'static str) -> Self {
        let namespace = std::env::var("METRICS_NAMESPACE")
            .ok()
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        Self::new(namespace, function)
    }

    /// Counts `value` of `metric` with these dimensions (besides `Function`), now.
    pub fn count(&self, metric: &str, value: u64, dimensions: &[(&str, &str)]) {
        self.write(&self.record(metric, value, Unit::Count, dimensions, now_millis()));
    }

    /// Counts this execution environment's cold start: called once, from `main`, at init.
    pub fn cold_start(&self) {
        self.count("ColdStart", 1, &[]);
    }

    /// The EMF record of one metric: `_aws` metadata naming it, then the dimensions' and the
    /// metric's values at the top level.
    pub fn record(
        &self,
        metric: &str,
        value: u64,
        unit: Unit,
        dimensions: &[(&str, &str)],
        timestamp_millis: u64,
    ) -> Value {
        let mut names: Vec<&str> = vec!["Function"];
        names.extend(dimensions.iter().map(|(name, _)| *name));
        let mut record = Map::new();
        record.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_millis,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [names],
                    "Metrics": [{"Name": metric, "Unit": unit.as_str()}],
                }],
            }),
        );
        record.insert("Function".into(), json!(self.function));
        for (name, value) in dimensions {
            record.insert((*name).into(), json!(value));
        }
        record.insert(metric.into(), json!(value));
        Value::Object(record)
    }

    /// One line on standard output, written whole (the lock keeps lines of concurrent tasks
    /// apart); a failed write is dropped: a metric is never worth failing a request.
    fn write(&self, record: &Value) {
        let mut line = record.to_string();
        line.push('\n');
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_emf_with_the_function_and_outcome_as_dimensions() {
        let metrics = Metrics::new("Users-test", "create-user");
        let record = metrics.record(
            "UsersRefused",
            1,
            Unit::Count,
            &[("Outcome", "taken")],
            1_795_327_200_123,
        );
        assert_eq!(
            record,
            json!({
                "_aws": {
                    "Timestamp": 1_795_327_200_123_u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "Users-test",
                        "Dimensions": [["Function", "Outcome"]],
                        "Metrics": [{"Name": "UsersRefused", "Unit": "Count"}],
                    }],
                },
                "Function": "create-user",
                "Outcome": "taken",
                "UsersRefused": 1,
            })
        );
    }

    #[test]
    fn every_dimension_named_has_a_value_and_the_metric_has_one() {
        let record =
            Metrics::new("N", "user-stream").record("HistoryRecorded", 100, Unit::Count, &[], 1);
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        for name in directive["Dimensions"][0].as_array().unwrap() {
            assert!(record.get(name.as_str().unwrap()).is_some(), "{name}");
        }
        assert_eq!(record["HistoryRecorded"], 100);
    }
}
