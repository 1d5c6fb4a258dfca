//! Loading a registered CF model version back (the recommendation batch's input).

use quire_cf::AlsModel;
use quire_registry::{ArtifactStore, ModelVersion, Registry};

use crate::train_cf::CfIndex;
use crate::{Error, Result, artifact};

/// A CF model version with its factors and index, every artifact checked against its sha256.
#[derive(Debug)]
pub struct LoadedCf {
    pub name: String,
    pub version: i64,
    pub run_id: String,
    pub model: AlsModel,
    pub index: CfIndex,
}

/// Resolves `NAME[@ALIAS]` (without an alias: the latest version) to a model version.
pub async fn resolve(registry: &Registry, spec: &str) -> Result<ModelVersion> {
    let (name, alias) = match spec.split_once('@') {
        Some((n, a)) => (n, Some(a)),
        None => (spec, None),
    };
    if name.is_empty() || alias.is_some_and(str::is_empty) {
        return Err(Error::Config(format!(
            "model {spec:?}: expected NAME or NAME@ALIAS"
        )));
    }
    Ok(match alias {
        Some(alias) => registry.get_version_by_alias(name, alias).await?,
        None => {
            // The highest version there is (not the model's `latest_version`, a counter).
            registry.get_registered_model(name).await?;
            registry
                .newest_version(name)
                .await?
                .ok_or_else(|| Error::Data(format!("model `{name}` has no versions")))?
        }
    })
}

/// Loads the CF model version `spec` (`NAME[@ALIAS]`).
pub async fn load_cf(registry: &Registry, store: &ArtifactStore, spec: &str) -> Result<LoadedCf> {
    let v = resolve(registry, spec).await?;
    let get = |name: &str| {
        v.artifacts.iter().find(|a| a.name == name).ok_or_else(|| {
            Error::Data(format!(
                "{} v{} has no artifact {name}: not a CF model (trained by a [cf] config)?",
                v.name, v.version
            ))
        })
    };
    let model_bytes = store.get(&get(artifact::CF_MODEL)?.artifact).await?;
    let index_bytes = store.get(&get(artifact::CF_INDEX)?.artifact).await?;
    let model = AlsModel::read_from(model_bytes.as_slice())?;
    let index: CfIndex = serde_json::from_slice(&index_bytes).map_err(|e| {
        Error::Data(format!(
            "{} v{} {}: {e}",
            v.name,
            v.version,
            artifact::CF_INDEX
        ))
    })?;
    if model.n_users() != index.user_ids.len() || model.n_items() != index.book_ids.len() {
        return Err(Error::Data(format!(
            "{} v{}: the factors are {} users × {} books but the index has {} and {}",
            v.name,
            v.version,
            model.n_users(),
            model.n_items(),
            index.user_ids.len(),
            index.book_ids.len()
        )));
    }
    Ok(LoadedCf {
        name: v.name,
        version: v.version,
        run_id: v.run_id.unwrap_or_default(),
        model,
        index,
    })
}

#[cfg(test)]
mod tests {
    use quire_registry::NewModelVersion;

    use super::*;

    #[test]
    fn without_an_alias_the_highest_existing_version_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let reg = Registry::connect(&url).await.unwrap();
            reg.create_registered_model("cf", "").await.unwrap();
            let err = resolve(&reg, "cf").await.unwrap_err();
            assert!(err.to_string().contains("has no versions"), "{err}");
            for _ in 0..3 {
                let v = NewModelVersion {
                    name: "cf".into(),
                    ..NewModelVersion::default()
                };
                reg.create_model_version(&v).await.unwrap();
            }
            assert_eq!(resolve(&reg, "cf").await.unwrap().version, 3);
            // The newest deleted: the counter says 3, the latest there is is 2.
            reg.delete_model_version("cf", 3, "test").await.unwrap();
            assert_eq!(resolve(&reg, "cf").await.unwrap().version, 2);
            assert!(resolve(&reg, "nope").await.is_err());
        });
    }
}
