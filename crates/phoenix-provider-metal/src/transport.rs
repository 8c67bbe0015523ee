//! How the provider reaches a host. Every host operation goes through
//! [`Transport`], so an SSH transport (and BMC power control) can be added
//! without touching the resource logic. Paths are absolute paths on the host.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use phoenix_core::provider::ProviderError;

/// Which stream a line of command output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Receives each line of a command's output as it arrives (without the newline).
pub type LineSink<'a> = &'a (dyn Fn(OutputStream, &str) + Send + Sync);

/// A command to run to completion with `sh -c`.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub command: String,
    /// Must exist.
    pub workdir: PathBuf,
    /// Added to the environment the transport runs with.
    pub env: Vec<(String, String)>,
    /// On expiry the command's whole process group is killed and
    /// [`TransportError::Timeout`] returned. `None`: no limit.
    pub timeout: Option<Duration>,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s}"),
            (None, None) => f.write_str("an unknown exit status"),
        }
    }
}

/// A file as read back from a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub content: Vec<u8>,
    /// Lower-case hex.
    pub sha256: String,
    /// Permission bits (`0o644`).
    pub mode: u32,
    /// `user:group` by name (by number when the host has no name for it).
    pub owner: String,
}

/// Environment variables that mark a process as Phoenix's: a service is found
/// again (after an interrupted run, or to check a pid was not reused) by
/// having all of them in its initial environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerMark {
    pub vars: Vec<(String, String)>,
}

/// When a service's command is started again after it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    No,
    #[default]
    OnFailure,
    Always,
}

impl Restart {
    /// Also systemd's spelling (`Restart=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::No => "no",
            Restart::OnFailure => "on-failure",
            Restart::Always => "always",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Restart::No, Restart::OnFailure, Restart::Always].into_iter().find(|r| r.as_str() == s)
    }
}

/// A long-running process to start detached, under [`crate::supervise`].
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// For messages and the log header.
    pub name: String,
    /// Run with `sh -c`.
    pub command: String,
    /// Must exist.
    pub workdir: PathBuf,
    pub env: Vec<(String, String)>,
    /// Set in the process's environment in addition to `env`.
    pub mark: OwnerMark,
    /// stdout and stderr are appended here; its directory is created.
    pub log_path: PathBuf,
    pub restart: Restart,
}

/// What [`Transport::stop_service`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// Nothing with that pid and mark was running.
    NotRunning,
    /// It exited after SIGTERM.
    Terminated,
    /// It outlived the timeout and was SIGKILLed.
    Killed,
}

/// A host operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The working directory of a command or service does not exist.
    #[error("working directory `{}` does not exist", .0.display())]
    MissingWorkdir(PathBuf),
    #[error("timed out after {}s", .0.as_secs_f64())]
    Timeout(Duration),
    /// The host could not be reached (worth retrying).
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Other(String),
}

impl TransportError {
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io { op, path: path.to_path_buf(), source }
    }
}

impl From<TransportError> for ProviderError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Unreachable(_) => ProviderError::transient(e.to_string()),
            _ => ProviderError::permanent(e.to_string()),
        }
    }
}

/// The operations the metal resources need from a host.
///
/// # Behavior
/// - `write_file` is atomic (a reader sees the old or the new content, never
///   a mix), creates missing parent directories and sets exactly `mode`, and
///   `owner` (`user` or `user:group`) when given, before the file appears.
/// - `read_file` and `tail_file` return `None` for a missing file; `remove_file`
///   of a missing file is `Ok(false)`.
/// - `remove_empty_dirs` tries each directory in order and silently keeps the
///   ones that are missing or not empty.
/// - `start_service` returns once the process is spawned: it runs in its own
///   process group (its pid is the group id), with stdin closed, and outlives
///   the caller. Whether it stays up is the caller's business
///   ([`Transport::service_running`]).
/// - `service_running`, `stop_service` and `find_services` only ever consider a
///   process that carries the whole [`OwnerMark`], so a reused pid is never
///   mistaken for a service or signalled.
/// - `find_services` returns the main process of each marked service (not its
///   children), oldest first.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// `local`, `ssh`...
    fn kind(&self) -> &'static str;

    async fn exec(&self, spec: &ExecSpec, on_line: LineSink<'_>) -> Result<ExitInfo, TransportError>;

    async fn write_file(&self, path: &Path, content: &[u8], mode: u32, owner: Option<&str>) -> Result<(), TransportError>;
    async fn read_file(&self, path: &Path) -> Result<Option<FileInfo>, TransportError>;
    /// At most the last `max_bytes` of a file.
    async fn tail_file(&self, path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, TransportError>;
    async fn remove_file(&self, path: &Path) -> Result<bool, TransportError>;
    async fn create_dir_all(&self, path: &Path) -> Result<(), TransportError>;
    async fn remove_empty_dirs(&self, dirs: &[PathBuf]) -> Result<(), TransportError>;

    /// Returns the pid (= process group id).
    async fn start_service(&self, spec: &ServiceSpec) -> Result<u32, TransportError>;
    async fn service_running(&self, pid: u32, mark: &OwnerMark) -> Result<bool, TransportError>;
    /// SIGTERM to the process group, SIGKILL after `timeout`.
    async fn stop_service(&self, pid: u32, mark: &OwnerMark, timeout: Duration) -> Result<StopOutcome, TransportError>;
    async fn find_services(&self, mark: &OwnerMark) -> Result<Vec<u32>, TransportError>;
}
