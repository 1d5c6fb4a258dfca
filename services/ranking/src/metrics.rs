//! The service's Prometheus metrics (`GET /metrics`, OpenMetrics text), through
//! `prometheus-client`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Request latency buckets, seconds: 0.1 ms apart around the 0.5–1.5 ms a 100-candidate
/// request takes, so a percentile interpolated from them is good to a few per cent.
const LATENCY_BUCKETS: [f64; 27] = [
    0.00025, 0.0005, 0.0006, 0.0007, 0.0008, 0.0009, 0.001, 0.0011, 0.0012, 0.0013, 0.0014, 0.0015,
    0.00175, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
];
/// Queue-wait buckets, seconds: a request waits tens of microseconds for an idle scoring
/// thread, a request's time for a busy one.
const QUEUE_BUCKETS: [f64; 15] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 1.0,
];
/// Candidates (or rows) per request.
const CANDIDATE_BUCKETS: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// Labels of per-endpoint metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndpointLabels {
    pub endpoint: &'static str,
}

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub endpoint: &'static str,
    pub status: u16,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub endpoint: &'static str,
    pub code: &'static str,
}

/// Labels of the served model's info gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ModelLabels {
    pub name: String,
    pub version: String,
    pub run_id: String,
}

/// Labels of the refused-load counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SplitLabels {
    /// `helped`: an idle scoring thread scored the second half; `withdrawn`: none had taken it
    /// when the first half was done, and the request's own thread scored it.
    pub outcome: &'static str,
}

pub(crate) type SplitFamily = Family<SplitLabels, Counter>;

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

/// Every metric the service exports, and their registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub latency: HistogramFamily,
    pub candidates: HistogramFamily,
    pub scoring: Histogram,
    pub queue: Histogram,
    pub requests: Family<StatusLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub model_info: Family<ModelLabels, Gauge>,
    pub model_version: Gauge,
    pub ready: Gauge,
    pub swaps: Counter,
    pub load_failures: Family<ReasonLabels, Counter>,
    pub registry_errors: Counter,
    pub splits: SplitFamily,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("quire_ranking");
        let latency: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        let candidates: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(CANDIDATE_BUCKETS));
        let scoring = Histogram::new(LATENCY_BUCKETS);
        let queue = Histogram::new(QUEUE_BUCKETS);
        let requests = Family::<StatusLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let model_info = Family::<ModelLabels, Gauge>::default();
        let model_version = Gauge::default();
        let ready = Gauge::default();
        let swaps = Counter::default();
        let load_failures = Family::<ReasonLabels, Counter>::default();
        let registry_errors = Counter::default();
        let splits = SplitFamily::default();
        registry.register_with_unit(
            "request_duration",
            "Time from the request's body to its answer, per endpoint",
            Unit::Seconds,
            latency.clone(),
        );
        registry.register(
            "candidates",
            "Candidates (rows) per scored request, per endpoint",
            candidates.clone(),
        );
        registry.register_with_unit(
            "scoring_duration",
            "Time of a /v1/rank request's scoring: its ONNX Runtime call, or both halves of a split batch",
            Unit::Seconds,
            scoring.clone(),
        );
        registry.register_with_unit(
            "queue_duration",
            "Time a request's job waited for a scoring thread: from its hand-off by the async side to its start (a job whose caller had gone included)",
            Unit::Seconds,
            queue.clone(),
        );
        registry.register(
            "requests",
            "Requests answered, per endpoint and status",
            requests.clone(),
        );
        registry.register(
            "errors",
            "Requests refused, per endpoint and error code",
            errors.clone(),
        );
        registry.register(
            "model_info",
            "The model version served (1), with its run",
            model_info.clone(),
        );
        registry.register(
            "model_version",
            "The registry version served (0: none yet)",
            model_version.clone(),
        );
        registry.register("ready", "1 once a model version is loaded", ready.clone());
        registry.register(
            "model_swaps",
            "Times a served version was replaced by the alias's new one",
            swaps.clone(),
        );
        registry.register(
            "model_load_failures",
            "Model versions refused (corrupt, checksum mismatch, incompatible…), per reason",
            load_failures.clone(),
        );
        registry.register(
            "registry_errors",
            "Failed reads of the registry by the alias follower",
            registry_errors.clone(),
        );
        registry.register(
            "split_batches",
            "Batches split in two to be scored on two threads at once, per outcome",
            splits.clone(),
        );
        Self {
            registry,
            latency,
            candidates,
            scoring,
            queue,
            requests,
            errors,
            model_info,
            model_version,
            ready,
            swaps,
            load_failures,
            registry_errors,
            splits,
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
