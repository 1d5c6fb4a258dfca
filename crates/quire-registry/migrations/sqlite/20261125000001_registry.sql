-- Quire registry schema (SQLite). Mirrors MLflow's tracking and model-registry tables.
-- Times are milliseconds since the Unix epoch, as in MLflow.

CREATE TABLE experiments (
    experiment_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL UNIQUE,
    artifact_location TEXT    NOT NULL,
    lifecycle_stage   TEXT    NOT NULL DEFAULT 'active',
    creation_time     INTEGER NOT NULL,
    last_update_time  INTEGER NOT NULL
);

CREATE TABLE experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES experiments (experiment_id),
    key           TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    PRIMARY KEY (experiment_id, key)
);

CREATE TABLE runs (
    run_uuid        TEXT    PRIMARY KEY,
    experiment_id   INTEGER NOT NULL REFERENCES experiments (experiment_id),
    name            TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    start_time      INTEGER NOT NULL,
    end_time        INTEGER,
    artifact_uri    TEXT    NOT NULL,
    lifecycle_stage TEXT    NOT NULL DEFAULT 'active',
    source_config   TEXT,
    git_commit      TEXT
);
CREATE INDEX runs_experiment_start ON runs (experiment_id, start_time);

CREATE TABLE params (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);

CREATE TABLE tags (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);

-- Append-only history: every logged value stays.
CREATE TABLE metrics (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_uuid  TEXT    NOT NULL REFERENCES runs (run_uuid),
    key       TEXT    NOT NULL,
    value     REAL    NOT NULL,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL
);
CREATE INDEX metrics_run_key_step ON metrics (run_uuid, key, step);

-- The latest value per (run, key): highest step, then latest timestamp (MLflow's rule).
CREATE TABLE latest_metrics (
    run_uuid  TEXT    NOT NULL REFERENCES runs (run_uuid),
    key       TEXT    NOT NULL,
    value     REAL    NOT NULL,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    PRIMARY KEY (run_uuid, key)
);

CREATE TABLE registered_models (
    name              TEXT    PRIMARY KEY,
    description       TEXT    NOT NULL DEFAULT '',
    creation_time     INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL,
    latest_version    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE registered_model_tags (
    name  TEXT NOT NULL REFERENCES registered_models (name),
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);

CREATE TABLE model_versions (
    name              TEXT    NOT NULL REFERENCES registered_models (name),
    version           INTEGER NOT NULL,
    description       TEXT    NOT NULL DEFAULT '',
    creation_time     INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL,
    source            TEXT    NOT NULL,
    run_id            TEXT,
    status            TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_run ON model_versions (run_id);

CREATE TABLE model_version_artifacts (
    name          TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    artifact_name TEXT    NOT NULL,
    uri           TEXT    NOT NULL,
    sha256        TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    PRIMARY KEY (name, version, artifact_name),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);

CREATE TABLE model_version_tags (
    name    TEXT    NOT NULL,
    version INTEGER NOT NULL,
    key     TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);

CREATE TABLE registered_model_aliases (
    name    TEXT    NOT NULL,
    alias   TEXT    NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);

-- Every alias move: which version an alias pointed at, and when. A NULL from_version is a
-- first assignment, a NULL to_version a deletion.
CREATE TABLE alias_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    alias        TEXT    NOT NULL,
    from_version INTEGER,
    to_version   INTEGER,
    moved_at     INTEGER NOT NULL,
    moved_by     TEXT    NOT NULL
);
CREATE INDEX alias_history_name_alias ON alias_history (name, alias, id);
