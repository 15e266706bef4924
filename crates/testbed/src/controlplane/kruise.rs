//! Installing OpenKruise into a fresh control plane: its namespace, CRDs and webhook
//! configurations from the release's manifests, as `kubectl apply` would, then waiting
//! until every CRD is established.

use std::path::{Path, PathBuf};
use std::time::Instant;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde::de::DeserializeOwned;

use super::{Assets, Error, POLL, STAGE_TIMEOUT, io};

/// The namespace, CRDs and webhook configurations Kruise expects to find (`kubectl apply`
/// of the release's manifests), then waits until every CRD is established.
pub(super) async fn install_kruise(client: &kube::Client, assets: &Assets) -> Result<(), Error> {
    let api_err = |what: String| move |source| Error::Api { what, source };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kruise-system"}
    }))
    .map_err(|e| Error::Manifest {
        path: PathBuf::from("kruise-system"),
        message: e.to_string(),
    })?;
    create(&namespaces, &ns)
        .await
        .map_err(api_err("create namespace kruise-system".into()))?;

    let mut files: Vec<PathBuf> = std::fs::read_dir(&assets.crds)
        .map_err(io(format!("read {}", assets.crds.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut creations = Vec::new();
    for file in &files {
        for crd in documents::<CustomResourceDefinition>(file)? {
            names.push(crd.metadata.name.clone().unwrap_or_default());
            let crds = crds.clone();
            creations.push(async move {
                let what = format!("create CRD {}", crd.metadata.name.as_deref().unwrap_or("?"));
                create(&crds, &crd).await.map_err(api_err(what))
            });
        }
    }
    futures::future::try_join_all(creations).await?;

    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let text = std::fs::read_to_string(&assets.webhooks)
        .map_err(io(format!("read {}", assets.webhooks.display())))?;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = yaml_document(doc, &assets.webhooks)?;
        let what = format!("create {} {}", value["kind"], value["metadata"]["name"]);
        match value["kind"].as_str() {
            Some("MutatingWebhookConfiguration") => {
                let obj = from_value(value, &assets.webhooks)?;
                create(&mutating, &obj).await.map_err(api_err(what))?;
            }
            Some("ValidatingWebhookConfiguration") => {
                let obj = from_value(value, &assets.webhooks)?;
                create(&validating, &obj).await.map_err(api_err(what))?;
            }
            Some(other) => {
                return Err(Error::Manifest {
                    path: assets.webhooks.clone(),
                    message: format!("unexpected kind {other}"),
                });
            }
            None => {}
        }
    }

    let began = Instant::now();
    loop {
        let list = crds
            .list(&Default::default())
            .await
            .map_err(api_err("list CRDs".into()))?;
        let pending: Vec<&str> = names
            .iter()
            .filter(|n| {
                !list.items.iter().any(|c| {
                    c.metadata.name.as_deref() == Some(n.as_str())
                        && c.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|cs| {
                                cs.iter()
                                    .any(|c| c.type_ == "Established" && c.status == "True")
                            })
                })
            })
            .map(String::as_str)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if began.elapsed() > STAGE_TIMEOUT {
            return Err(Error::Manifest {
                path: assets.crds.clone(),
                message: format!("CRDs not established: {}", pending.join(", ")),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Creates `obj`; one that exists already is left alone (as `kubectl create` would refuse it,
/// but on a fresh etcd only a retried call can meet it).
async fn create<K>(api: &Api<K>, obj: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every non-empty YAML document of a file, as `K`.
fn documents<K: DeserializeOwned>(path: &Path) -> Result<Vec<K>, Error> {
    let text = std::fs::read_to_string(path).map_err(io(format!("read {}", path.display())))?;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = yaml_document(doc, path)?;
        if !value.is_null() {
            out.push(from_value(value, path)?);
        }
    }
    Ok(out)
}

fn from_value<K: DeserializeOwned>(value: serde_json::Value, path: &Path) -> Result<K, Error> {
    serde_json::from_value(value).map_err(|e| Error::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// One YAML document as a JSON value, naming the file on error.
fn yaml_document(
    doc: serde_yaml::Deserializer<'_>,
    path: &Path,
) -> Result<serde_json::Value, Error> {
    serde::Deserialize::deserialize(doc).map_err(|e: serde_yaml::Error| Error::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
