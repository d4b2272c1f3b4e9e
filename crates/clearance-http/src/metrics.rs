//! Metrics in CloudWatch Embedded Metric Format: one JSON line on stdout per
//! event, which CloudWatch Logs turns into metrics (namespace
//! `CashClearance`, dimension `Function`). Written only inside Lambda
//! (`AWS_LAMBDA_FUNCTION_NAME` set); locally and in tests nothing is printed.
//! No row data and no secret ever goes into a metric line.

use std::time::{SystemTime, UNIX_EPOCH};

pub const NAMESPACE: &str = "CashClearance";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Milliseconds,
    Seconds,
    Count,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Milliseconds => "Milliseconds",
            Self::Seconds => "Seconds",
            Self::Count => "Count",
        }
    }
}

/// The EMF line of `metrics` (name, value, unit) for `function`.
pub fn emf_line(function: &str, metrics: &[(&str, f64, Unit)], timestamp_ms: u128) -> String {
    let definitions: Vec<serde_json::Value> = metrics
        .iter()
        .map(|(name, _, unit)| serde_json::json!({ "Name": name, "Unit": unit.as_str() }))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms as u64,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }],
        },
        "Function": function,
    });
    for (name, value, _) in metrics {
        line[*name] = serde_json::json!(value);
    }
    line.to_string()
}

/// Emits `metrics` when running in Lambda.
pub fn emit(metrics: &[(&str, f64, Unit)]) {
    let Ok(function) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") else { return };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    println!("{}", emf_line(&function, metrics, now));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_every_metric_it_carries() -> Result<(), serde_json::Error> {
        let line = emf_line(
            "clearance-read",
            &[("SearchSqlMs", 12.5, Unit::Milliseconds), ("CacheHit", 1.0, Unit::Count)],
            7,
        );
        let v: serde_json::Value = serde_json::from_str(&line)?;
        assert_eq!(v["_aws"]["Timestamp"], 7);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"], "CacheHit");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "Function");
        assert_eq!((v["Function"].as_str(), v["SearchSqlMs"].as_f64()), (Some("clearance-read"), Some(12.5)));
        Ok(())
    }
}
