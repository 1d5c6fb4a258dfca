-- NaN metric values are stored (MLflow stores them: its SQL store as 0 with an `is_nan` flag),
-- here as NULL: SQLite has no NaN (it binds one as NULL). NULL compares false with every value,
-- so a NaN passes no metric filter, and it sorts last with the runs that lack the metric (MLflow
-- sorts NaN between the numbers and those runs). SQLite cannot drop a NOT NULL constraint: both
-- tables are rebuilt with their rows (and `metrics` with its ids and AUTOINCREMENT sequence).

CREATE TABLE metrics_nullable (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_uuid  TEXT    NOT NULL REFERENCES runs (run_uuid),
    key       TEXT    NOT NULL,
    value     REAL,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL
);
INSERT INTO metrics_nullable (id, run_uuid, key, value, timestamp, step)
    SELECT id, run_uuid, key, value, timestamp, step FROM metrics;
-- The sequence carries over (the copy sets it to the largest id copied, which may be lower).
DELETE FROM sqlite_sequence WHERE name = 'metrics_nullable';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'metrics_nullable', seq FROM sqlite_sequence WHERE name = 'metrics';
DROP TABLE metrics;
ALTER TABLE metrics_nullable RENAME TO metrics;
CREATE INDEX metrics_run_key_step ON metrics (run_uuid, key, step);

CREATE TABLE latest_metrics_nullable (
    run_uuid  TEXT    NOT NULL REFERENCES runs (run_uuid),
    key       TEXT    NOT NULL,
    value     REAL,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
INSERT INTO latest_metrics_nullable (run_uuid, key, value, timestamp, step)
    SELECT run_uuid, key, value, timestamp, step FROM latest_metrics;
DROP TABLE latest_metrics;
ALTER TABLE latest_metrics_nullable RENAME TO latest_metrics;
CREATE INDEX latest_metrics_key_value_run ON latest_metrics (key, value, run_uuid);
