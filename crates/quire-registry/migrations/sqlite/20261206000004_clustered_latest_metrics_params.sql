-- latest_metrics and params keep their rows in their primary key's B-tree (WITHOUT ROWID)
-- instead of a rowid table beside a primary-key index: a log-batch writes two B-trees fewer per
-- table, about a sixth fewer pages per commit. A lookup by (run, key) finds the value in the key,
-- so the covering (run_uuid, key, value) index of latest_metrics is no longer needed.

CREATE TABLE latest_metrics_clustered (
    run_uuid  TEXT    NOT NULL REFERENCES runs (run_uuid),
    key       TEXT    NOT NULL,
    value     REAL    NOT NULL,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
INSERT INTO latest_metrics_clustered (run_uuid, key, value, timestamp, step)
    SELECT run_uuid, key, value, timestamp, step FROM latest_metrics;
DROP TABLE latest_metrics;
ALTER TABLE latest_metrics_clustered RENAME TO latest_metrics;
CREATE INDEX latest_metrics_key_value_run ON latest_metrics (key, value, run_uuid);

CREATE TABLE params_clustered (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
INSERT INTO params_clustered (run_uuid, key, value) SELECT run_uuid, key, value FROM params;
DROP TABLE params;
ALTER TABLE params_clustered RENAME TO params;
