//! Outputs for the next CI step: `phoenix output ENV --format dotenv|json
//! [--out FILE]` and `phoenix up --outputs-file FILE`.
//!
//! Sensitive outputs are never written: state keeps only a salted digest of
//! them (so there is no clear text to write), and a file handed to later CI
//! steps is exactly where secrets leak. They are listed as skipped on stderr
//! instead; a pipeline needing a secret reads it from its secret store.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, anyhow};
use phoenix_core::value::{Value, is_sealed};

use crate::args::{EnvArgs, Global, OutputFormat};
use crate::context;
use crate::exit::{CmdResult, Exit};

pub async fn export(g: &Global, args: &EnvArgs, name: Option<&str>, format: OutputFormat, out: Option<&Path>) -> CmdResult {
    let project = context::project(g)?;
    let opts = args.load_options();
    let loaded = context::load_definition(&project, &args.env, &opts)?;
    let env = context::env_of(project, loaded);
    let state = env.read_state().await?;
    let mut outputs = state.outputs.clone();
    if let Some(n) = name {
        outputs.retain(|k, _| k == n);
        if outputs.is_empty() {
            return Err(anyhow!("no output `{n}` in the state of {}", env.loaded.state_key()).into());
        }
    }
    let text = render(format, &outputs);
    match out {
        Some(path) => {
            // `-C DIR` means "as if started in DIR": relative paths are under it.
            let path = &env.project.root.join(path);
            write_private(path, &text)?;
            errln!("wrote {} output(s) to {}", outputs.values().filter(|v| !is_sealed(v)).count(), path.display());
        }
        None => out!("{text}"),
    }
    Ok(Exit::Ok)
}

/// `up --outputs-file`: dotenv, or JSON when the name ends in `.json`.
pub fn write_file(path: &Path, outputs: &BTreeMap<String, Value>) -> Result<(), crate::exit::Failure> {
    let format = if path.extension().is_some_and(|e| e == "json") { OutputFormat::Json } else { OutputFormat::Dotenv };
    write_private(path, &render(format, outputs))?;
    Ok(())
}

fn render(format: OutputFormat, outputs: &BTreeMap<String, Value>) -> String {
    let skipped: Vec<&String> = outputs.iter().filter(|(_, v)| is_sealed(v)).map(|(k, _)| k).collect();
    if !skipped.is_empty() {
        errln!(
            "note: sensitive output(s) left out: {} (state keeps only their digest)",
            skipped.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let visible = outputs.iter().filter(|(_, v)| !is_sealed(v));
    match format {
        OutputFormat::Json => {
            let m: serde_json::Map<String, Value> = visible.map(|(k, v)| (k.clone(), v.clone())).collect();
            format!("{}\n", Value::Object(m))
        }
        OutputFormat::Dotenv => visible.map(|(k, v)| format!("{}={}\n", dotenv_name(k), dotenv_value(v))).collect(),
    }
}

/// `public_ip` → `PUBLIC_IP`: what shells and CI systems accept as a variable name.
fn dotenv_name(name: &str) -> String {
    let mut s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Single-quoted, so `$`, backslashes and spaces arrive unchanged (`'` is written `'\''`).
/// Non-strings are written as JSON.
fn dotenv_value(v: &Value) -> String {
    let raw = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("'{}'", raw.replace('\'', "'\\''"))
}

/// Writes `text` to `path` with mode 0600, replacing it atomically.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_quotes_and_names_survive_a_shell() {
        let outputs: BTreeMap<String, Value> = [
            ("public_ip".to_string(), Value::from("10.0.0.1")),
            ("odd-name".to_string(), Value::from("it's $HOME")),
            ("count".to_string(), Value::from(3)),
            ("token".to_string(), phoenix_core::value::seal(&Value::from("s3cret"), "salt")),
        ]
        .into_iter()
        .collect();
        let text = render(OutputFormat::Dotenv, &outputs);
        assert_eq!(text, "COUNT='3'\nODD_NAME='it'\\''s $HOME'\nPUBLIC_IP='10.0.0.1'\n", "sensitive `token` is left out");
        assert!(!render(OutputFormat::Json, &outputs).contains("token"));
        let out =
            std::process::Command::new("sh").arg("-c").arg(format!("{text}printf '%s|%s' \"$ODD_NAME\" \"$COUNT\"")).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $HOME|3");
    }
}
