//! `metal.exec`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use phoenix_core::addr::ResourceAddr;
use phoenix_core::provider::{DeleteRequest, LogSink, ProviderError, UpdateRequest};
use phoenix_core::state::Ownership;
use phoenix_core::value::Attrs;
use serde_json::json;

use crate::config::MetalConfig;
use crate::transport::{ExecSpec, OutputStream, TransportError};
use crate::{OWNER_ENV, env_vars, host, int, opt_str, prune, req_str, workdir};

const DEFAULT_TIMEOUT_SECS: i64 = 300;
/// How much of stdout the `stdout` attribute keeps.
const STDOUT_TAIL_BYTES: usize = 4096;
/// How many stderr lines an error shows.
const STDERR_TAIL_LINES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Create,
    Update,
    Destroy,
}

impl Phase {
    fn attr(self) -> &'static str {
        match self {
            Phase::Create => "command",
            Phase::Update => "update_command",
            Phase::Destroy => "destroy_command",
        }
    }
}

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

/// Runs the command of `phase` (create: `command`; update: `update_command`,
/// else `command`) and returns `exit_code` and `stdout`.
pub async fn run(
    cfg: &MetalConfig,
    addr: &ResourceAddr,
    inputs: &Attrs,
    ownership: &Ownership,
    log: &LogSink,
    phase: Phase,
) -> Result<Attrs, ProviderError> {
    let (attr, command) = match phase {
        Phase::Update => match opt_str(inputs, "update_command")? {
            Some(c) => ("update_command", c),
            None => ("command", req_str(inputs, "command")?),
        },
        _ => (phase.attr(), req_str(inputs, phase.attr())?),
    };
    let env = env_vars(inputs, "environment")?
        .ok_or_else(|| ProviderError::permanent("`environment` is sealed: its values are needed to run the command"))?;
    let (code, stdout) = run_command(cfg, addr, inputs, ownership, log, attr, command, env).await?;
    let mut out = Attrs::new();
    out.insert("exit_code".into(), json!(code));
    out.insert("stdout".into(), json!(stdout));
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn run_command(
    cfg: &MetalConfig,
    addr: &ResourceAddr,
    inputs: &Attrs,
    ownership: &Ownership,
    log: &LogSink,
    attr: &str,
    command: &str,
    mut env: Vec<(String, String)>,
) -> Result<(i32, String), ProviderError> {
    let h = cfg.host(host(inputs))?;
    let t = h.transport.clone();
    let workdir = workdir(&h, inputs).await?;
    let timeout_secs = int(inputs, "timeout_secs", DEFAULT_TIMEOUT_SECS)?;
    env.push((OWNER_ENV.to_string(), ownership.key()));
    let spec = ExecSpec {
        command: command.to_string(),
        workdir,
        env,
        timeout: (timeout_secs > 0).then(|| Duration::from_secs(timeout_secs as u64)),
    };
    let tails = Mutex::new(Tails::default());
    let on_line = |stream: OutputStream, line: &str| {
        log(addr, line);
        tails.lock().unwrap_or_else(|e| e.into_inner()).push(stream, line);
    };
    let mut result = t.exec(&spec, &on_line).await;
    if matches!(&result, Err(TransportError::MissingWorkdir(d)) if *d == h.root) {
        // A concurrent delete pruned the (then empty) root after it was made.
        t.create_dir_all(&h.root).await?;
        result = t.exec(&spec, &on_line).await;
    }
    let tails = tails.into_inner().unwrap_or_else(|e| e.into_inner());
    match result {
        Ok(exit) if exit.success() => Ok((0, tails.stdout_tail())),
        Ok(exit) => Err(ProviderError::permanent(format!("`{attr}` of `{addr}` failed with {exit}{}", tails.describe()))),
        Err(TransportError::Timeout(d)) => Err(ProviderError::permanent(format!(
            "`{attr}` of `{addr}` timed out after {}s (timeout_secs) and its process group was killed{}",
            d.as_secs(),
            tails.describe()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Runs `update_command` (or `command`) again, unless only what matters on
/// destroy changed.
pub async fn update(cfg: &MetalConfig, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
    let destroy_only = !req.changed.is_empty() && req.changed.iter().all(|c| c == "destroy_command" || c == "timeout_secs");
    if destroy_only {
        cfg.transport(host(&req.inputs))?;
        return Ok(req.prior_outputs.clone());
    }
    run(cfg, &req.addr, &req.inputs, &req.ownership, &req.log, Phase::Update).await
}

/// Runs `destroy_command` if there is one. State holds `environment` sealed,
/// so it runs without those variables then (and says so in the log).
pub async fn delete(cfg: &MetalConfig, req: &DeleteRequest) -> Result<(), ProviderError> {
    let h = cfg.host(host(&req.inputs))?;
    if let Some(command) = opt_str(&req.inputs, Phase::Destroy.attr())? {
        let env = match env_vars(&req.inputs, "environment")? {
            Some(env) => env,
            None => {
                (req.log)(&req.addr, "note: `environment` is sensitive and not kept in state; destroy_command runs without it");
                Vec::new()
            }
        };
        run_command(cfg, &req.addr, &req.inputs, &req.ownership, &req.log, Phase::Destroy.attr(), command, env).await?;
    }
    // The root may have been made for the command's working directory.
    prune(&h, Vec::new()).await
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
