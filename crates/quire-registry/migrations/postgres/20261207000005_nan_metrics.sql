-- A NaN metric value is stored, as MLflow stores it, as NULL (as on SQLite, which has no NaN):
-- NULL compares false with every value, so a NaN passes no metric filter, and it sorts with the
-- runs that lack the metric, last.
ALTER TABLE metrics ALTER COLUMN value DROP NOT NULL;
ALTER TABLE latest_metrics ALTER COLUMN value DROP NOT NULL;
