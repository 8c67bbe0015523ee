//! `metal.file`.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::Host;
use crate::local::sha256_hex;
use crate::schemas::{parse_mode, resource_path};
use crate::{Metal, default_host, prune};

pub struct File;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// the host it lives on: a name under [providers.metal.hosts]
    #[serde(default = "default_host")]
    #[schemars(extend("force_new" = true))]
    pub host: String,
    /// where the file goes; relative paths are under the provider root and may not leave it
    #[schemars(extend("force_new" = true, "format" = "resource-path"))]
    pub path: String,
    /// the file's content
    pub content: String,
    /// permission bits in octal, like "0644"
    #[serde(default = "default_mode")]
    #[schemars(extend("format" = "octal-mode"))]
    pub mode: String,
    /// `user` or `user:group` (names or ids) the file is given before it appears; needs the rights to chown
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "owner"))]
    pub owner: Option<String>,
}

/// Missing fields read as empty: state may hold none (a delete of what a failed create recorded).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct FileOutputs {
    /// SHA-256 of the content (hex): reference it to restart a service when the file changes
    pub sha256: String,
    /// the absolute path of the file on its host
    #[schemars(extend("stable" = true))]
    pub abs_path: String,
}

fn default_mode() -> String {
    "0644".into()
}

impl FileSpec {
    /// Where the file is: `abs_path` once it exists (the object's identity), else from `path`.
    fn location(&self, h: &Host, outputs: Option<&FileOutputs>) -> Result<PathBuf, ProviderError> {
        if let Some(o) = outputs.filter(|o| !o.abs_path.is_empty()) {
            return Ok(PathBuf::from(&o.abs_path));
        }
        resource_path(&json!(self.path)).map_err(|e| ProviderError::permanent(format!("`path`: {e}")))?;
        h.resolve("path", &self.path)
    }

    fn mode(&self) -> Result<u32, ProviderError> {
        parse_mode(&self.mode).map_err(|e| ProviderError::permanent(format!("`mode`: {e}")))
    }

    /// Create and update: write the whole file atomically.
    async fn write(&self, client: &Metal) -> Result<FileOutputs, ProviderError> {
        let h = client.config()?.host(&self.host)?;
        let path = self.location(&h, None)?;
        h.transport.write_file(&path, self.content.as_bytes(), self.mode()?, self.owner.as_deref()).await?;
        Ok(outputs(sha256_hex(self.content.as_bytes()), &path))
    }
}

fn outputs(sha256: String, path: &Path) -> FileOutputs {
    FileOutputs { sha256, abs_path: path.display().to_string() }
}

/// Whether a file owned by `found` (`user:group`) has the owner `wanted`
/// (`user` or `user:group`; a user alone says nothing about the group).
fn owner_matches(wanted: &str, found: &str) -> bool {
    let (fu, fg) = found.split_once(':').unwrap_or((found, ""));
    match wanted.split_once(':') {
        Some((u, g)) => u == fu && g == fg,
        None => wanted == fu,
    }
}

#[async_trait]
impl Kind for File {
    const TYPE: &'static str = "metal.file";
    const DESCRIPTION: &'static str = "A file with the given content, written atomically; relative paths live under the provider root";
    const FORMATS: &'static [(&'static str, Validator)] = crate::schemas::FORMATS;
    type Client = Metal;
    type Spec = FileSpec;
    type Outputs = FileOutputs;

    fn capabilities(&self) -> Capabilities {
        // A written file is found at its path.
        Capabilities::managed()
    }

    async fn read(&self, client: &Metal, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        let cfg = client.config()?;
        futures_util::future::try_join_all(items.iter().map(|i| async {
            let h = cfg.host(&i.spec.host)?;
            let path = i.spec.location(&h, Some(&i.outputs))?;
            let Some(found) = h.transport.read_file(&path).await? else { return Ok(None) };
            let mut spec = i.spec.clone();
            if sha256_hex(i.spec.content.as_bytes()) != found.sha256 {
                // Drift: report what is there so the plan shows it and rewrites the file.
                spec.content = String::from_utf8_lossy(&found.content).into_owned();
            }
            if i.spec.mode().ok() != Some(found.mode) {
                spec.mode = format!("{:04o}", found.mode);
            }
            if let Some(wanted) = &i.spec.owner
                && !owner_matches(wanted, &found.owner)
            {
                spec.owner = Some(found.owner.clone());
            }
            Ok(Some(Observed { spec, outputs: outputs(found.sha256, &path) }))
        }))
        .await
    }

    /// A file an interrupted create wrote is the file: adopt it when its content is the one wanted.
    async fn find(&self, client: &Metal, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        let h = client.config()?.host(&req.spec.host)?;
        let path = req.spec.location(&h, None)?;
        let Some(found) = h.transport.read_file(&path).await? else { return Ok(None) };
        let owner_ok = req.spec.owner.as_deref().is_none_or(|o| owner_matches(o, &found.owner));
        if sha256_hex(req.spec.content.as_bytes()) != found.sha256 || req.spec.mode().ok() != Some(found.mode) || !owner_ok {
            // Half-written or someone else's: create overwrites it.
            return Ok(None);
        }
        Ok(Some(Observed { spec: req.spec.clone(), outputs: outputs(found.sha256, &path) }))
    }

    async fn create(&self, client: &Metal, req: Create<'_, Self>) -> Result<FileOutputs, ProviderError> {
        req.spec.write(client).await
    }

    async fn update(&self, client: &Metal, req: Update<'_, Self>) -> Result<FileOutputs, ProviderError> {
        req.spec.write(client).await
    }

    /// Removes the file, then the directories it leaves empty up to (not including)
    /// the root, then the root's bookkeeping directory and the root if empty.
    async fn delete(&self, client: &Metal, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let h = client.config()?.host(&req.spec.host)?;
        let path = req.spec.location(&h, Some(req.outputs))?;
        h.transport.remove_file(&path).await?;
        let parents: Vec<PathBuf> =
            path.ancestors().skip(1).take_while(|d| d.starts_with(&h.root) && *d != h.root).map(Path::to_path_buf).collect();
        prune(&h, parents).await
    }
}
