-- Run searches that filter on a metric select the runs from the metric's side
-- (`run_uuid IN (SELECT run_uuid FROM latest_metrics WHERE key = ? AND value > ?)`): this index
-- answers that range from the index alone.
CREATE INDEX latest_metrics_key_value_run ON latest_metrics (key, value, run_uuid);
