//! `metal.file`.

use std::path::{Path, PathBuf};

use phoenix_core::provider::{AdoptRequest, DeleteRequest, Observed, ProviderError, RefreshItem};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use crate::config::{Host, MetalConfig};
use crate::local::sha256_hex;
use crate::schemas::{parse_mode, resource_path};
use crate::{host, opt_str, prune, req_str};

const DEFAULT_MODE: &str = "0644";

/// Where the file is: `abs_path` once it exists (the object's identity), else from `path`.
fn location(h: &Host, inputs: &Attrs, outputs: Option<&Attrs>) -> Result<PathBuf, ProviderError> {
    if let Some(p) = outputs.and_then(|o| o.get("abs_path")).and_then(Value::as_str) {
        return Ok(PathBuf::from(p));
    }
    let path = req_str(inputs, "path")?;
    resource_path(&json!(path)).map_err(|e| ProviderError::permanent(format!("`path`: {e}")))?;
    h.resolve("path", path)
}

fn mode(inputs: &Attrs) -> Result<u32, ProviderError> {
    parse_mode(opt_str(inputs, "mode")?.unwrap_or(DEFAULT_MODE)).map_err(|e| ProviderError::permanent(format!("`mode`: {e}")))
}

fn outputs(sha256: String, path: &Path) -> Attrs {
    let mut o = Attrs::new();
    o.insert("sha256".into(), Value::String(sha256));
    o.insert("abs_path".into(), Value::String(path.display().to_string()));
    o
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

/// Create and update: write the whole file atomically.
pub async fn write(cfg: &MetalConfig, inputs: &Attrs) -> Result<Attrs, ProviderError> {
    let h = cfg.host(host(inputs))?;
    let t = h.transport.clone();
    let path = location(&h, inputs, None)?;
    let content = req_str(inputs, "content")?;
    let mode = mode(inputs)?;
    t.write_file(&path, content.as_bytes(), mode, opt_str(inputs, "owner")?).await?;
    Ok(outputs(sha256_hex(content.as_bytes()), &path))
}

pub async fn refresh(cfg: &MetalConfig, item: &RefreshItem) -> Result<Option<Observed>, ProviderError> {
    let h = cfg.host(host(&item.inputs))?;
    let t = h.transport.clone();
    let path = location(&h, &item.inputs, Some(&item.outputs))?;
    let Some(found) = t.read_file(&path).await? else { return Ok(None) };
    let mut inputs = item.inputs.clone();
    let applied = item.inputs.get("content").and_then(Value::as_str).map(|c| sha256_hex(c.as_bytes()));
    if applied.as_deref() != Some(found.sha256.as_str()) {
        // Drift: report what is there so the plan shows it and rewrites the file.
        inputs.insert("content".into(), Value::String(String::from_utf8_lossy(&found.content).into_owned()));
    }
    if mode(&item.inputs).ok() != Some(found.mode) {
        inputs.insert("mode".into(), Value::String(format!("{:04o}", found.mode)));
    }
    if let Ok(Some(wanted)) = opt_str(&item.inputs, "owner")
        && !owner_matches(wanted, &found.owner)
    {
        inputs.insert("owner".into(), Value::String(found.owner.clone()));
    }
    Ok(Some(Observed { inputs, outputs: outputs(found.sha256, &path) }))
}

/// A file an interrupted create wrote is the file: adopt it when its content is the one wanted.
pub async fn adopt(cfg: &MetalConfig, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
    let h = cfg.host(host(&req.inputs))?;
    let t = h.transport.clone();
    let path = location(&h, &req.inputs, None)?;
    let Some(found) = t.read_file(&path).await? else { return Ok(None) };
    let wanted = req.inputs.get("content").and_then(Value::as_str).map(|c| sha256_hex(c.as_bytes()));
    let owner_ok = opt_str(&req.inputs, "owner")?.is_none_or(|o| owner_matches(o, &found.owner));
    if wanted.as_deref() != Some(found.sha256.as_str()) || mode(&req.inputs).ok() != Some(found.mode) || !owner_ok {
        // Half-written or someone else's: create overwrites it.
        return Ok(None);
    }
    Ok(Some(Observed { inputs: req.inputs.clone(), outputs: outputs(found.sha256, &path) }))
}

/// Removes the file, then the directories it leaves empty up to (not including)
/// the root, then the root's bookkeeping directory and the root if empty.
pub async fn delete(cfg: &MetalConfig, req: &DeleteRequest) -> Result<(), ProviderError> {
    let h = cfg.host(host(&req.inputs))?;
    let t = h.transport.clone();
    let path = location(&h, &req.inputs, Some(&req.outputs))?;
    t.remove_file(&path).await?;
    let parents: Vec<PathBuf> =
        path.ancestors().skip(1).take_while(|d| d.starts_with(&h.root) && *d != h.root).map(Path::to_path_buf).collect();
    prune(&h, parents).await
}
