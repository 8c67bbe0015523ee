//! `metal.exec`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use phoenix_core::addr::ResourceAddr;
use phoenix_core::kit::{Capabilities, Create, Delete, Kind, Observed, Prior, Secret, Update};
use phoenix_core::provider::{LogSink, ProviderError};
use phoenix_core::schema::Validator;
use phoenix_core::state::Ownership;
use phoenix_core::value::Value;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::MetalConfig;
use crate::transport::{ExecSpec, OutputStream, TransportError};
use crate::{Metal, OWNER_ENV, default_host, prune, workdir};

pub struct Exec;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecInputs {
    /// the host it lives on: a name under [providers.metal.hosts]
    #[serde(default = "default_host")]
    #[schemars(extend("force_new" = true))]
    pub host: String,
    /// run with `sh -c` on create (and on update without `update_command`)
    pub command: String,
    /// run on update instead of `command`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_command: Option<String>,
    /// run on destroy; it gets `environment` only if it is not sealed in state
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy_command: Option<String>,
    /// extra environment variables
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Secret<BTreeMap<String, String>>>,
    /// working directory; relative to the provider root, which is the default
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "workdir"))]
    pub workdir: Option<String>,
    /// any change replaces the resource (runs `destroy_command`, then `command`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub triggers: Option<BTreeMap<String, Value>>,
    /// the command's process group is killed after this many seconds (0: no limit)
    #[serde(default = "default_timeout")]
    #[schemars(extend("format" = "non-negative"))]
    pub timeout_secs: i64,
}

/// Missing fields read as empty: state may hold none (a delete of what a failed create recorded).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ExecOutputs {
    /// the exit code of the last run (0)
    pub exit_code: i64,
    /// the last 4 KiB of standard output, trimmed
    pub stdout: String,
}

fn default_timeout() -> i64 {
    300
}
/// How much of stdout the `stdout` attribute keeps.
const STDOUT_TAIL_BYTES: usize = 4096;
/// How many stderr lines an error shows.
const STDERR_TAIL_LINES: usize = 20;

/// What a run kept of its output.
#[derive(Default)]
struct Tails {
    stdout: String,
    stderr: VecDeque<String>,
    stdout_lines: VecDeque<String>,
}

impl Tails {
    fn push(&mut self, stream: OutputStream, line: &str) {
        match stream {
            OutputStream::Stdout => {
                self.stdout.push_str(line);
                self.stdout.push('\n');
                if self.stdout.len() > 4 * STDOUT_TAIL_BYTES {
                    let cut = ceil_char_boundary(&self.stdout, self.stdout.len() - STDOUT_TAIL_BYTES);
                    self.stdout.drain(..cut);
                }
                push_bounded(&mut self.stdout_lines, line);
            }
            OutputStream::Stderr => push_bounded(&mut self.stderr, line),
        }
    }

    /// The last lines of stderr, or of stdout when stderr said nothing.
    fn describe(&self) -> String {
        let (what, lines) = if self.stderr.is_empty() { ("stdout", &self.stdout_lines) } else { ("stderr", &self.stderr) };
        if lines.is_empty() {
            return "\n(no output)".into();
        }
        let body: Vec<&str> = lines.iter().map(String::as_str).collect();
        format!("\nlast lines of {what}:\n  {}", body.join("\n  "))
    }

    fn stdout_tail(&self) -> String {
        let s = self.stdout.trim();
        s[ceil_char_boundary(s, s.len().saturating_sub(STDOUT_TAIL_BYTES))..].trim_start().to_string()
    }
}

fn push_bounded(q: &mut VecDeque<String>, line: &str) {
    if q.len() == STDERR_TAIL_LINES {
        q.pop_front();
    }
    q.push_back(line.to_string());
}

/// The smallest char boundary at or above `i`: where a tail of at most `len - i` bytes starts.
fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The environment in clear; `None` when state holds it sealed.
fn env(spec: &ExecInputs) -> Option<Vec<(String, String)>> {
    match &spec.environment {
        None => Some(Vec::new()),
        Some(Secret::Clear(env)) => Some(env.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(Secret::Sealed(_)) => None,
    }
}

/// One command of a run: which input it is (for errors) and its text.
struct Command<'a> {
    attr: &'a str,
    text: &'a str,
}

/// The environment in clear, which create and update need.
fn clear_env(spec: &ExecInputs) -> Result<Vec<(String, String)>, ProviderError> {
    env(spec).ok_or_else(|| ProviderError::permanent("`environment` is sealed: its values are needed to run the command"))
}

/// Runs `command` to its end and returns the outputs of a successful run.
async fn run(
    cfg: &MetalConfig,
    addr: &ResourceAddr,
    spec: &ExecInputs,
    ownership: &Ownership,
    log: &LogSink,
    command: Command<'_>,
    mut env: Vec<(String, String)>,
) -> Result<ExecOutputs, ProviderError> {
    let h = cfg.host(&spec.host)?;
    let t = h.transport.clone();
    let workdir = workdir(&h, spec.workdir.as_deref()).await?;
    let timeout_secs = spec.timeout_secs;
    env.push((OWNER_ENV.to_string(), ownership.key()));
    let exec = ExecSpec {
        command: command.text.to_string(),
        workdir,
        env,
        timeout: (timeout_secs > 0).then(|| Duration::from_secs(timeout_secs as u64)),
    };
    let tails = Mutex::new(Tails::default());
    let on_line = |stream: OutputStream, line: &str| {
        log(addr, line);
        tails.lock().unwrap_or_else(|e| e.into_inner()).push(stream, line);
    };
    let mut result = t.exec(&exec, &on_line).await;
    if matches!(&result, Err(TransportError::MissingWorkdir(d)) if *d == h.root) {
        // A concurrent delete pruned the (then empty) root after it was made.
        t.create_dir_all(&h.root).await?;
        result = t.exec(&exec, &on_line).await;
    }
    let tails = tails.into_inner().unwrap_or_else(|e| e.into_inner());
    let attr = command.attr;
    match result {
        Ok(exit) if exit.success() => Ok(ExecOutputs { exit_code: 0, stdout: tails.stdout_tail() }),
        Ok(exit) => Err(ProviderError::permanent(format!("`{attr}` of `{addr}` failed with {exit}{}", tails.describe()))),
        Err(TransportError::Timeout(d)) => Err(ProviderError::permanent(format!(
            "`{attr}` of `{addr}` timed out after {}s (timeout_secs) and its process group was killed{}",
            d.as_secs(),
            tails.describe()
        ))),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl Kind for Exec {
    const TYPE: &'static str = "metal.exec";
    const DESCRIPTION: &'static str = "Commands run on create, update and destroy (deployment hooks); fails on a non-zero exit";
    const FORMATS: &'static [(&'static str, Validator)] = crate::schemas::FORMATS;
    type Client = Metal;
    type Spec = ExecInputs;
    type Outputs = ExecOutputs;

    fn capabilities(&self) -> Capabilities {
        // Commands leave nothing to find: they run again.
        Capabilities::managed().not_adoptable()
    }

    /// A command has run; nothing of it stays to be read back.
    async fn read(&self, client: &Metal, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        let cfg = client.config()?;
        items
            .iter()
            .map(|i| {
                cfg.transport(&i.spec.host)?;
                Ok(Some(Observed { spec: i.spec.clone(), outputs: i.outputs.clone() }))
            })
            .collect()
    }

    async fn create(&self, client: &Metal, req: Create<'_, Self>) -> Result<ExecOutputs, ProviderError> {
        let command = Command { attr: "command", text: &req.spec.command };
        run(&*client.config()?, req.addr, req.spec, req.ownership, req.log, command, clear_env(req.spec)?).await
    }

    /// Runs `update_command` (or `command`) again, unless only what matters on
    /// destroy changed.
    async fn update(&self, client: &Metal, req: Update<'_, Self>) -> Result<ExecOutputs, ProviderError> {
        let cfg = client.config()?;
        let destroy_only = !req.changed.is_empty() && req.changed.iter().all(|c| c == "destroy_command" || c == "timeout_secs");
        if destroy_only {
            cfg.transport(&req.spec.host)?;
            return Ok(req.outputs.clone());
        }
        let command = match &req.spec.update_command {
            Some(c) => Command { attr: "update_command", text: c },
            None => Command { attr: "command", text: &req.spec.command },
        };
        run(&cfg, req.addr, req.spec, req.ownership, req.log, command, clear_env(req.spec)?).await
    }

    /// Runs `destroy_command` if there is one. State holds `environment` sealed,
    /// so it runs without those variables then (and says so in the log).
    async fn delete(&self, client: &Metal, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let cfg = client.config()?;
        let h = cfg.host(&req.spec.host)?;
        if let Some(text) = &req.spec.destroy_command {
            let env = env(req.spec).unwrap_or_else(|| {
                (req.log)(req.addr, "note: `environment` is sensitive and not kept in state; destroy_command runs without it");
                Vec::new()
            });
            let command = Command { attr: "destroy_command", text };
            run(&cfg, req.addr, req.spec, req.ownership, req.log, command, env).await?;
        }
        // The root may have been made for the command's working directory.
        prune(&h, Vec::new()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_are_bounded() {
        let mut t = Tails::default();
        for i in 0..5000 {
            t.push(OutputStream::Stdout, &format!("line {i} é"));
            t.push(OutputStream::Stderr, &format!("err {i}"));
        }
        let out = t.stdout_tail();
        assert!(out.len() <= STDOUT_TAIL_BYTES);
        assert!(out.ends_with("line 4999 é"));
        assert_eq!(t.stderr.len(), STDERR_TAIL_LINES);
        assert!(t.describe().contains("err 4999") && !t.describe().contains("err 4979"));
    }
}
