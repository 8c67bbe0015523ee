//! [`Transport`] over SSH: every operation is one `sh` script (see [`shell`])
//! on its own channel of the host's shared connection.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::conn::{RunEnd, SshTransport, tail_lines};
use super::shell::{self, MARKER, NO_WORKDIR_EXIT};
use crate::local::sha256_hex;
use crate::transport::{
    ExecSpec, ExitInfo, FileInfo, LineSink, OutputStream, OwnerMark, ServiceSpec, StopOutcome, Transport, TransportError,
};

/// Between SIGTERM and SIGKILL when a command is killed (timeout, dropped connection).
const KILL_GRACE_MS: u64 = 2000;

/// Splits a byte stream into lines for the sink; swallows the transport's own marker lines.
#[derive(Default)]
struct Lines {
    pending: [Vec<u8>; 2],
    pgid: Option<u32>,
    no_workdir: bool,
}

impl Lines {
    fn feed(&mut self, stream: OutputStream, bytes: &[u8], sink: LineSink<'_>) {
        let i = stream as usize;
        self.pending[i].extend_from_slice(bytes);
        while let Some(n) = self.pending[i].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending[i].drain(..=n).collect();
            self.emit(stream, &line[..line.len() - 1], sink);
        }
    }

    fn finish(&mut self, sink: LineSink<'_>) {
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream as usize]);
            if !rest.is_empty() {
                self.emit(stream, &rest, sink);
            }
        }
    }

    fn emit(&mut self, stream: OutputStream, line: &[u8], sink: LineSink<'_>) {
        let mut text = String::from_utf8_lossy(line).into_owned();
        while text.ends_with('\r') {
            text.pop();
        }
        if stream == OutputStream::Stderr
            && let Some(own) = text.strip_prefix(MARKER)
        {
            if let Some(pgid) = own.strip_prefix("PGID ") {
                self.pgid = pgid.trim().parse().ok();
            } else if own == "NOWORKDIR" {
                self.no_workdir = true;
            }
            return;
        }
        sink(stream, &text);
    }
}

impl SshTransport {
    /// Kills a command's process group after a timeout or a dropped
    /// connection, over a (new) connection. Only a group whose leader or a
    /// member carries the command's owner mark is signalled.
    async fn kill_group(&self, pgid: u32, mark: &OwnerMark) -> Result<StopOutcome, TransportError> {
        let out = self.run_idempotent("stopping a command", &shell::stop_script(pgid, mark, KILL_GRACE_MS), b"").await?;
        parse_stop(&out.stdout_text())
    }
}

fn parse_stop(s: &str) -> Result<StopOutcome, TransportError> {
    match s.trim() {
        "not-running" => Ok(StopOutcome::NotRunning),
        "terminated" => Ok(StopOutcome::Terminated),
        "killed" => Ok(StopOutcome::Killed),
        other => Err(TransportError::Other(format!("unexpected answer from the stop script: `{other}`"))),
    }
}

fn check_env(env: &[(String, String)]) -> Result<(), TransportError> {
    match env.iter().find(|(k, _)| !shell::valid_env_name(k)) {
        Some((k, _)) => Err(TransportError::Other(format!("`{k}` is not a valid environment variable name"))),
        None => Ok(()),
    }
}

/// The owner mark an exec carries (PHOENIX_OWNER in its environment), if any.
fn exec_mark(spec: &ExecSpec) -> OwnerMark {
    OwnerMark { vars: spec.env.iter().filter(|(k, _)| k == crate::OWNER_ENV).cloned().collect() }
}

#[async_trait]
impl Transport for SshTransport {
    fn kind(&self) -> &'static str {
        "ssh"
    }

    async fn exec(&self, spec: &ExecSpec, on_line: LineSink<'_>) -> Result<ExitInfo, TransportError> {
        check_env(&spec.env)?;
        let script = shell::exec_script(&spec.command, &spec.workdir, &spec.env);
        let lines = Mutex::new(Lines::default());
        let mut on_out = |s: OutputStream, b: &[u8]| lines.lock().unwrap_or_else(|e| e.into_inner()).feed(s, b, on_line);
        let run = self.run_raw("exec sh -s", script.as_bytes(), &mut on_out);
        let ended = match spec.timeout {
            Some(t) => tokio::time::timeout(t, run).await.map_err(|_| t),
            None => Ok(run.await),
        };
        let mut lines = lines.into_inner().unwrap_or_else(|e| e.into_inner());
        lines.finish(on_line);
        match ended {
            Ok(Ok(RunEnd::Exited(exit))) => {
                if lines.no_workdir && exit.code == Some(NO_WORKDIR_EXIT as i32) {
                    return Err(TransportError::MissingWorkdir(spec.workdir.clone()));
                }
                Ok(exit)
            }
            Ok(Err(e)) => Err(e),
            Err(t) => {
                if let Some(pgid) = lines.pgid {
                    self.kill_group(pgid, &exec_mark(spec)).await?;
                }
                Err(TransportError::Timeout(t))
            }
            Ok(Ok(RunEnd::Lost(why))) => {
                let name = &self.target.name;
                let cleanup = match lines.pgid {
                    Some(pgid) => match self.kill_group(pgid, &exec_mark(spec)).await {
                        Ok(StopOutcome::NotRunning) => {
                            format!("it had already ended on {name} (process group {pgid})")
                        }
                        Ok(_) => format!("its process group {pgid} on {name} was stopped over a new connection"),
                        Err(e) => format!("it may still be running on {name} as process group {pgid}: stopping it failed: {e}"),
                    },
                    None => format!("it may or may not have started on {name}"),
                };
                Err(TransportError::Other(format!(
                    "the SSH connection to {name} dropped while the command was running ({why}); {cleanup}. \
                     It is not re-run automatically, because a command need not be idempotent: run `up` again"
                )))
            }
        }
    }

    async fn write_file(&self, path: &Path, content: &[u8], mode: u32, owner: Option<&str>) -> Result<(), TransportError> {
        // The whole file is sent each time, so a retry after a drop is safe.
        self.run_idempotent(&format!("writing `{}`", path.display()), &shell::write_script(path, mode, owner), content).await?;
        Ok(())
    }

    async fn read_file(&self, path: &Path) -> Result<Option<FileInfo>, TransportError> {
        let out = self.run_idempotent(&format!("reading `{}`", path.display()), &shell::read_script(path), b"").await?;
        let Some(n) = out.stdout.iter().position(|b| *b == b'\n') else {
            return Err(TransportError::Other(format!("unexpected answer reading `{}`", path.display())));
        };
        let head = String::from_utf8_lossy(&out.stdout[..n]).into_owned();
        if head == "absent" {
            return Ok(None);
        }
        let (mode, owner) = head.trim().split_once(' ').unwrap_or((head.trim(), ""));
        let mode = u32::from_str_radix(mode, 8)
            .map_err(|_| TransportError::Other(format!("unexpected file mode `{head}` for `{}`", path.display())))?;
        let content = out.stdout[n + 1..].to_vec();
        let sha256 = sha256_hex(&content);
        Ok(Some(FileInfo { content, sha256, mode, owner: owner.to_string() }))
    }

    async fn tail_file(&self, path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, TransportError> {
        let out = self.run_idempotent(&format!("reading `{}`", path.display()), &shell::tail_script(path, max_bytes), b"").await?;
        match out.stdout.strip_prefix(b"present\n") {
            Some(rest) => Ok(Some(rest.to_vec())),
            None => Ok(None),
        }
    }

    async fn remove_file(&self, path: &Path) -> Result<bool, TransportError> {
        let out = self.run_idempotent(&format!("removing `{}`", path.display()), &shell::remove_script(path), b"").await?;
        Ok(out.stdout_text().trim() == "removed")
    }

    async fn create_dir_all(&self, path: &Path) -> Result<(), TransportError> {
        let script = format!("mkdir -p {}\n", shell::qpath(path));
        self.run_idempotent(&format!("creating directory `{}`", path.display()), &script, b"").await?;
        Ok(())
    }

    async fn remove_empty_dirs(&self, dirs: &[PathBuf]) -> Result<(), TransportError> {
        if dirs.is_empty() {
            return Ok(());
        }
        self.run_idempotent("removing empty directories", &shell::rmdirs_script(dirs), b"").await?;
        Ok(())
    }

    async fn start_service(&self, spec: &ServiceSpec) -> Result<u32, TransportError> {
        check_env(&spec.env)?;
        check_env(&spec.mark.vars)?;
        let mut env = spec.env.clone();
        env.extend(spec.mark.vars.iter().cloned());
        let run = crate::supervise::supervised(&spec.command, spec.restart);
        let script = shell::start_service_script(&spec.name, &spec.command, &run, &spec.workdir, &env, &spec.log_path, crate::LOG_HEADER);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut collect = |s: OutputStream, b: &[u8]| match s {
            OutputStream::Stdout => stdout.extend_from_slice(b),
            OutputStream::Stderr => stderr.extend_from_slice(b),
        };
        // Not retried blindly: a second start would make a second process.
        // After a drop the service is found again by its mark (adopt).
        let exit = match self.run_raw("exec sh -s", script.as_bytes(), &mut collect).await? {
            RunEnd::Exited(e) => e,
            RunEnd::Lost(why) => {
                return Err(TransportError::Unreachable(format!(
                    "the SSH connection to {} dropped while starting service `{}` ({why}); the next run finds it by its owner mark if it started",
                    self.target.name, spec.name
                )));
            }
        };
        let err = String::from_utf8_lossy(&stderr);
        if exit.code == Some(NO_WORKDIR_EXIT as i32) && err.contains("NOWORKDIR") {
            return Err(TransportError::MissingWorkdir(spec.workdir.clone()));
        }
        if !exit.success() {
            return Err(TransportError::Other(format!(
                "cannot start service `{}` on {}: {exit}: {}",
                spec.name,
                self.target.name,
                tail_lines(&err, 10)
            )));
        }
        String::from_utf8_lossy(&stdout)
            .trim()
            .parse()
            .map_err(|_| TransportError::Other(format!("service `{}` on {}: no pid reported", spec.name, self.target.name)))
    }

    async fn service_running(&self, pid: u32, mark: &OwnerMark) -> Result<bool, TransportError> {
        if pid <= 1 {
            return Ok(false);
        }
        let out = self.run_idempotent("checking a service", &shell::running_script(pid, mark), b"").await?;
        Ok(out.stdout_text().trim() == "yes")
    }

    async fn stop_service(&self, pid: u32, mark: &OwnerMark, timeout: Duration) -> Result<StopOutcome, TransportError> {
        if pid <= 1 {
            return Ok(StopOutcome::NotRunning);
        }
        let script = shell::stop_script(pid, mark, timeout.as_millis() as u64);
        let out = self.run_idempotent("stopping a service", &script, b"").await?;
        parse_stop(&out.stdout_text())
    }

    async fn find_services(&self, mark: &OwnerMark) -> Result<Vec<u32>, TransportError> {
        let out = self.run_idempotent("looking for services", &shell::find_script(mark), b"").await?;
        Ok(leaders(&out.stdout_text()))
    }
}

/// From `pid state ppid pgrp starttime` lines: the processes that lead their
/// own group and whose parent is not marked too, oldest first.
fn leaders(listing: &str) -> Vec<u32> {
    let rows: Vec<(u32, u32, u32, u64)> = listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.parse().ok()?, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?, f.get(4)?.parse().ok()?))
        })
        .collect();
    let pids: Vec<u32> = rows.iter().map(|r| r.0).collect();
    let mut out: Vec<(u64, u32)> =
        rows.iter().filter(|(p, ppid, pgrp, _)| pgrp == p && !pids.contains(ppid)).map(|(p, _, _, start)| (*start, *p)).collect();
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_lines_are_kept_from_the_sink() {
        let seen = Mutex::new(Vec::new());
        let sink = |s: OutputStream, l: &str| seen.lock().unwrap().push((s, l.to_string()));
        let mut lines = Lines::default();
        lines.feed(OutputStream::Stderr, format!("{MARKER}PGID 42\nwarn").as_bytes(), &sink);
        lines.feed(OutputStream::Stdout, b"a\r\nb", &sink);
        lines.feed(OutputStream::Stderr, b"ing\n", &sink);
        lines.finish(&sink);
        assert_eq!(lines.pgid, Some(42));
        let seen = seen.into_inner().unwrap();
        assert_eq!(
            seen,
            vec![(OutputStream::Stdout, "a".into()), (OutputStream::Stderr, "warning".into()), (OutputStream::Stdout, "b".into())]
        );
    }

    #[test]
    fn leaders_are_group_leaders_without_marked_parents() {
        let listing = "10 S 1 10 500\n11 S 10 10 501\n20 S 1 20 400\n30 S 10 30 600\n";
        assert_eq!(leaders(listing), vec![20, 10]);
    }
}
