//! The service's Prometheus metrics (`GET /metrics`, OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Intake latency buckets, seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Labels of the per-event and per-request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub status: &'static str,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub events: Family<StatusLabels, Counter>,
    pub requests: Family<StatusLabels, Counter>,
    pub latency: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("quire_live");
        let events = Family::<StatusLabels, Counter>::default();
        let requests = Family::<StatusLabels, Counter>::default();
        let latency = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "intake_events",
            "Events posted to the intake, per outcome (accepted, duplicate, rejected)",
            events.clone(),
        );
        registry.register(
            "intake_requests",
            "Intake requests answered, per HTTP status",
            requests.clone(),
        );
        registry.register_with_unit(
            "intake_request_duration",
            "Time from an intake request's body to its answer",
            Unit::Seconds,
            latency.clone(),
        );
        Self {
            registry,
            events,
            requests,
            latency,
        }
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
