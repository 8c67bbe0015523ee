//! The `ssh` transport: a host reached over SSH with [`russh`] (pure Rust,
//! async on the same tokio runtime, the same aws-lc-rs crypto as our TLS; no
//! `ssh` binary, no C library).
//!
//! One connection per host, opened on first use and shared by every
//! operation (each gets its own channel, at most [`MAX_CHANNELS`] at once,
//! below OpenSSH's `MaxSessions` of 10). The host key is checked against a
//! known_hosts file before anything is sent: a mismatch is refused, an
//! unknown host is refused unless `host_key_check = "accept-new"` records it
//! first (OpenSSH's `StrictHostKeyChecking=accept-new`).
//!
//! A dropped connection is never silently continued: operations that are
//! idempotent (reading, writing a whole file, signalling a marked process)
//! are retried once on a new connection; a command (`metal.exec`) is not
//! re-run, because commands need not be idempotent: its process group is
//! killed on the host over a new connection and the drop is reported.

mod conn;
mod ops;
pub(crate) mod shell;

use std::path::PathBuf;
use std::time::Duration;

pub use conn::SshTransport;

/// Channels open at once on one connection.
pub const MAX_CHANNELS: usize = 8;

/// What to do with a host whose key is not in known_hosts yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// Refuse it (the default): add the key to known_hosts first (`ssh-keyscan`, or from the machine's console).
    Strict,
    /// Trust it on first use and record it; a changed key is still refused.
    AcceptNew,
}

impl HostKeyCheck {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "strict" => Some(Self::Strict),
            "accept-new" => Some(Self::AcceptNew),
            _ => None,
        }
    }
}

/// How to reach and log in to one host.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// For messages: the inventory name.
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// An OpenSSH private key file.
    pub key_path: PathBuf,
    /// The environment variable holding the key's passphrase (never the passphrase itself).
    pub key_passphrase_env: Option<String>,
    pub known_hosts: PathBuf,
    pub host_key_check: HostKeyCheck,
    pub connect_timeout: Duration,
    /// Connection attempts before the host counts as unreachable.
    pub connect_attempts: u32,
}

impl SshTarget {
    /// `user@address:port`, for messages.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }
}
