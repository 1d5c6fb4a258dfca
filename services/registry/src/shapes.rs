//! Registry records as MLflow's JSON messages: ids and versions as strings, times in
//! milliseconds, key/value maps as lists of `{"key", "value"}`, optional fields left out.

use std::collections::BTreeMap;

use quire_registry::{
    AliasMove, ArtifactFile, Experiment, LoggedModel, Metric, ModelVersion, RegisteredModel, Run,
    RunInfo,
};
use serde_json::{Map, Value, json};

fn key_values(map: &BTreeMap<String, String>) -> Value {
    Value::Array(
        map.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

/// A double as protobuf's JSON mapping writes it: non-finite values are strings.
pub fn double(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

pub fn experiment(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.experiment_id.to_string(),
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage,
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
        "tags": key_values(&e.tags),
    })
}

pub fn run_info(i: &RunInfo) -> Value {
    let mut v = json!({
        "run_id": i.run_id,
        "run_uuid": i.run_id,
        "run_name": i.run_name,
        "experiment_id": i.experiment_id.to_string(),
        "user_id": i.user_id,
        "status": i.status.as_str(),
        "start_time": i.start_time,
        "artifact_uri": i.artifact_uri,
        "lifecycle_stage": i.lifecycle_stage,
    });
    if let Some(end) = i.end_time {
        v["end_time"] = json!(end);
    }
    v
}

pub fn metric(m: &Metric) -> Value {
    json!({"key": m.key, "value": double(m.value), "timestamp": m.timestamp, "step": m.step})
}

/// A run with its outputs (the logged models it produced, with their step).
pub fn run(r: &Run, outputs: &[(String, i64)]) -> Value {
    let mut v = json!({
        "info": run_info(&r.info),
        "data": {
            "metrics": r.data.metrics.iter().map(metric).collect::<Vec<_>>(),
            "params": key_values(&r.data.params),
            "tags": key_values(&r.data.tags),
        },
        "inputs": {},
    });
    if !outputs.is_empty() {
        v["outputs"] = json!({
            "model_outputs": outputs
                .iter()
                .map(|(id, step)| json!({"model_id": id, "step": step}))
                .collect::<Vec<_>>()
        });
    }
    v
}

/// A model version; `model_id` is the logged model it was registered from. Beside MLflow's
/// fields, `quire_artifacts` lists its files with their SHA-256 (the client ignores unknown
/// fields).
pub fn model_version(mv: &ModelVersion, model_id: Option<&str>) -> Value {
    let mut v = json!({
        "name": mv.name,
        "version": mv.version.to_string(),
        "creation_timestamp": mv.creation_time,
        "last_updated_timestamp": mv.last_updated_time,
        "current_stage": "None",
        "description": mv.description,
        "source": mv.source,
        "status": mv.status,
        "tags": key_values(&mv.tags),
        "aliases": mv.aliases,
        "quire_artifacts": mv.artifacts.iter().map(|a| json!({
            "name": a.name,
            "uri": a.artifact.uri,
            "sha256": a.artifact.sha256,
            "size": a.artifact.size,
        })).collect::<Vec<_>>(),
    });
    if let Some(run_id) = &mv.run_id {
        v["run_id"] = json!(run_id);
    }
    if let Some(id) = model_id {
        v["model_id"] = json!(id);
    }
    v
}

/// A registered model; `latest` is its newest version, when it has one.
pub fn registered_model(m: &RegisteredModel, latest: Option<Value>) -> Value {
    let mut v = json!({
        "name": m.name,
        "creation_timestamp": m.creation_time,
        "last_updated_timestamp": m.last_updated_time,
        "description": m.description,
        "tags": key_values(&m.tags),
        "aliases": m.aliases.iter()
            .map(|(alias, version)| json!({"alias": alias, "version": version.to_string()}))
            .collect::<Vec<_>>(),
    });
    if let Some(latest) = latest {
        v["latest_versions"] = json!([latest]);
    }
    v
}

pub fn logged_model(m: &LoggedModel) -> Value {
    let mut info = json!({
        "model_id": m.model_id,
        "experiment_id": m.experiment_id.to_string(),
        "name": m.name,
        "creation_timestamp_ms": m.creation_time,
        "last_updated_timestamp_ms": m.last_updated_time,
        "artifact_uri": m.artifact_uri,
        "status": m.status,
        "model_type": m.model_type,
        "status_message": m.status_message,
        "tags": key_values(&m.tags),
    });
    if let Some(run_id) = &m.source_run_id {
        info["source_run_id"] = json!(run_id);
    }
    json!({
        "info": info,
        "data": {"params": key_values(&m.params), "metrics": []},
    })
}

pub fn alias_move(m: &AliasMove) -> Value {
    let mut v = Map::new();
    v.insert("alias".into(), json!(m.alias));
    if let Some(from) = m.from_version {
        v.insert("from_version".into(), json!(from.to_string()));
    }
    if let Some(to) = m.to_version {
        v.insert("to_version".into(), json!(to.to_string()));
    }
    v.insert("moved_at".into(), json!(m.moved_at));
    v.insert("moved_by".into(), json!(m.moved_by));
    Value::Object(v)
}

/// One entry of an artifact listing: a bare name, whether it is a directory, and a file's
/// size.
pub fn file_entry(name: &str, file: Option<&ArtifactFile>) -> Value {
    match file {
        Some(f) => json!({"path": name, "is_dir": false, "file_size": f.artifact.size}),
        None => json!({"path": name, "is_dir": true}),
    }
}

/// Adds `next_page_token` when there is a next page (left out on the last one).
pub fn with_token(mut v: Value, token: Option<String>) -> Value {
    if let Some(t) = token {
        v["next_page_token"] = json!(t);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_follow_protobuf_json() {
        assert_eq!(double(0.25), json!(0.25));
        assert_eq!(double(f64::NAN), json!("NaN"));
        assert_eq!(double(f64::INFINITY), json!("Infinity"));
        assert_eq!(double(f64::NEG_INFINITY), json!("-Infinity"));
    }

    #[test]
    fn next_page_token_only_when_there_is_a_page() {
        assert_eq!(with_token(json!({}), None), json!({}));
        assert_eq!(
            with_token(json!({}), Some("5".into())),
            json!({"next_page_token": "5"})
        );
    }
}
