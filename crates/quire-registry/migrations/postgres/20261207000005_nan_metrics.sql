-- NaN metric values are stored (MLflow stores them: its SQL store as 0 with an `is_nan` flag),
-- here as NULL, as on SQLite, which has no NaN. NULL compares false with every value, so a NaN
-- passes no metric filter, and it sorts last with the runs that lack the metric (MLflow sorts
-- NaN between the numbers and those runs).
ALTER TABLE metrics ALTER COLUMN value DROP NOT NULL;
ALTER TABLE latest_metrics ALTER COLUMN value DROP NOT NULL;
