//! One SSH connection per host: connecting, checking the host key,
//! authenticating, and running one script on its own channel.

use std::sync::Arc;
use std::time::Duration;

use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate, known_hosts};
use tokio::sync::{Mutex, Semaphore};

use super::{HostKeyCheck, MAX_CHANNELS, SshTarget};
use crate::transport::{ExitInfo, OutputStream, TransportError};

/// A host reached over SSH. Cheap to create: nothing connects until the first operation.
pub struct SshTransport {
    pub(crate) target: SshTarget,
    conn: Mutex<Option<Arc<Handle<Client>>>>,
    channels: Semaphore,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport").field("target", &self.target.describe()).finish()
    }
}

/// How a script on a channel ended.
pub(crate) enum RunEnd {
    Exited(ExitInfo),
    /// The connection (or the channel) went away before an exit status arrived.
    Lost(String),
}

/// A script run to completion with its whole output.
pub(crate) struct Output {
    pub stdout: Vec<u8>,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Why a connection could not be made.
#[derive(Debug)]
pub(crate) enum ConnError {
    Ssh(russh::Error),
    /// Refused by the host-key check: never retried.
    HostKey(String),
}

impl From<russh::Error> for ConnError {
    fn from(e: russh::Error) -> Self {
        Self::Ssh(e)
    }
}

/// The russh callbacks: only the host-key check matters to us.
pub(crate) struct Client {
    target: SshTarget,
}

impl client::Handler for Client {
    type Error = ConnError;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => verify_host_key(&self.target, key).map(|()| true).map_err(ConnError::HostKey),
            PublicKeyOrCertificate::Certificate(_) => Err(ConnError::HostKey(format!(
                "{} presented a host certificate; Phoenix checks plain host keys against known_hosts only",
                self.target.describe()
            ))),
        }
    }
}

/// Accepts a key recorded for the host; refuses a different one; records an
/// unknown host only with `accept-new`. Any recorded key of another algorithm
/// counts as "known" too: a server switching algorithms must not slip through
/// as a new host.
pub(crate) fn verify_host_key(t: &SshTarget, key: &PublicKey) -> Result<(), String> {
    let fingerprint = key.fingerprint(HashAlg::Sha256);
    let known = known_hosts::known_host_keys_path(&t.address, t.port, &t.known_hosts)
        .map_err(|e| format!("cannot read known_hosts `{}`: {e}", t.known_hosts.display()))?;
    if known.iter().any(|(_, k)| k == key) {
        return Ok(());
    }
    if let Some((line, _)) = known.first() {
        return Err(format!(
            "host key verification failed for {} ({}): it presented {} {fingerprint}, which is not the key recorded in {} line {line}. \
             Someone may be intercepting the connection, or the machine was reinstalled; if you know it was, remove that line and run again",
            t.name,
            t.describe(),
            key.algorithm(),
            t.known_hosts.display()
        ));
    }
    match t.host_key_check {
        HostKeyCheck::Strict => Err(format!(
            "host key verification failed for {} ({}): the host is not in {} (it presented {} {fingerprint}). \
             Add its key (e.g. `ssh-keyscan -p {} {} >> {}` after checking the fingerprint) or set host_key_check = \"accept-new\" for it",
            t.name,
            t.describe(),
            t.known_hosts.display(),
            key.algorithm(),
            t.port,
            t.address,
            t.known_hosts.display()
        )),
        HostKeyCheck::AcceptNew => {
            known_hosts::learn_known_hosts_path(&t.address, t.port, key, &t.known_hosts)
                .map_err(|e| format!("cannot record the host key of {} in `{}`: {e}", t.name, t.known_hosts.display()))?;
            tracing::info!(host = %t.name, %fingerprint, "recorded a new host key (accept-new)");
            Ok(())
        }
    }
}

impl SshTransport {
    pub fn new(target: SshTarget) -> Self {
        Self { target, conn: Mutex::new(None), channels: Semaphore::new(MAX_CHANNELS) }
    }

    /// The shared connection, made (again) when there is none or it closed.
    async fn handle(&self) -> Result<Arc<Handle<Client>>, TransportError> {
        let mut slot = self.conn.lock().await;
        if let Some(h) = slot.as_ref()
            && !h.is_closed()
        {
            return Ok(h.clone());
        }
        *slot = None;
        let h = Arc::new(self.connect().await?);
        *slot = Some(h.clone());
        Ok(h)
    }

    /// Drops the shared connection if it is still `h`, so the next operation reconnects.
    async fn forget(&self, h: &Arc<Handle<Client>>) {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, h)) {
            *slot = None;
        }
    }

    async fn connect(&self) -> Result<Handle<Client>, TransportError> {
        let t = &self.target;
        let config = Arc::new(client::Config {
            // Detects a peer that vanished without closing (cable pulled, host frozen).
            keepalive_interval: Some(Duration::from_secs(5)),
            keepalive_max: 3,
            inactivity_timeout: None,
            nodelay: true,
            ..Default::default()
        });
        let mut last = String::new();
        for attempt in 1..=t.connect_attempts.max(1) {
            if attempt > 1 {
                tokio::time::sleep(Duration::from_millis(500 << (attempt - 2).min(4))).await;
            }
            let client = Client { target: t.clone() };
            let connecting = client::connect(config.clone(), (t.address.as_str(), t.port), client);
            let mut h = match tokio::time::timeout(t.connect_timeout, connecting).await {
                Ok(Ok(h)) => h,
                Ok(Err(ConnError::HostKey(msg))) => return Err(TransportError::Other(msg)),
                Ok(Err(ConnError::Ssh(e))) => {
                    last = e.to_string();
                    tracing::debug!(host = %t.name, attempt, error = %last, "SSH connection failed");
                    continue;
                }
                Err(_) => {
                    last = format!("no SSH handshake within {}s", t.connect_timeout.as_secs());
                    continue;
                }
            };
            self.authenticate(&mut h).await?;
            return Ok(h);
        }
        Err(TransportError::Unreachable(format!(
            "cannot reach {} over SSH ({}) after {} attempts: {last}",
            t.name,
            t.describe(),
            t.connect_attempts.max(1)
        )))
    }

    async fn authenticate(&self, h: &mut Handle<Client>) -> Result<(), TransportError> {
        let t = &self.target;
        let passphrase = match &t.key_passphrase_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                TransportError::Other(format!(
                    "the SSH key of {} needs the passphrase in the environment variable `{var}`, which is not set",
                    t.name
                ))
            })?),
            None => None,
        };
        let key = russh::keys::load_secret_key(&t.key_path, passphrase.as_deref())
            .map_err(|e| TransportError::Other(format!("cannot load the SSH key `{}` of {}: {e}", t.key_path.display(), t.name)))?;
        let hash = h.best_supported_rsa_hash().await.ok().flatten().flatten();
        let result = h
            .authenticate_publickey(t.user.clone(), PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|e| TransportError::Unreachable(format!("SSH authentication with {} failed: {e}", t.describe())))?;
        if result.success() {
            Ok(())
        } else {
            Err(TransportError::Other(format!("{} refused the key `{}` for user `{}`", t.describe(), t.key_path.display(), t.user)))
        }
    }

    /// Runs `command` on a new channel, feeding `stdin` then EOF, handing
    /// output to `on_out` as it arrives.
    pub(crate) async fn run_raw(
        &self,
        command: &str,
        stdin: &[u8],
        on_out: &mut (dyn FnMut(OutputStream, &[u8]) + Send),
    ) -> Result<RunEnd, TransportError> {
        let h = self.handle().await?;
        let _permit = self.channels.acquire().await.map_err(|e| TransportError::Other(e.to_string()))?;
        let lost = |what: &str, e: &dyn std::fmt::Display| RunEnd::Lost(format!("{what}: {e}"));
        let mut ch = match h.channel_open_session().await {
            Ok(c) => c,
            Err(e) => {
                self.forget(&h).await;
                return Ok(lost("opening a channel", &e));
            }
        };
        if let Err(e) = ch.exec(true, command).await {
            self.forget(&h).await;
            return Ok(lost("starting the command", &e));
        }
        if !stdin.is_empty()
            && let Err(e) = ch.data(stdin).await
        {
            self.forget(&h).await;
            return Ok(lost("sending input", &e));
        }
        let _ = ch.eof().await;
        let mut exit = None;
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } => on_out(OutputStream::Stdout, &data),
                ChannelMsg::ExtendedData { data, ext: 1 } => on_out(OutputStream::Stderr, &data),
                ChannelMsg::ExitStatus { exit_status } => exit = Some(ExitInfo { code: Some(exit_status as i32), signal: None }),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    exit = Some(ExitInfo { code: None, signal: Some(signal_number(&signal_name)) });
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        match exit {
            Some(e) => Ok(RunEnd::Exited(e)),
            None => {
                self.forget(&h).await;
                Ok(RunEnd::Lost("the connection closed before the command reported an exit status".into()))
            }
        }
    }

    /// Runs an idempotent script, retrying it once on a new connection if the
    /// first one drops. A non-zero exit is an error carrying its stderr.
    pub(crate) async fn run_idempotent(&self, what: &str, command: &str, stdin: &[u8]) -> Result<Output, TransportError> {
        let mut first_loss = None;
        for _ in 0..2 {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let mut collect = |s: OutputStream, b: &[u8]| match s {
                OutputStream::Stdout => stdout.extend_from_slice(b),
                OutputStream::Stderr => stderr.extend_from_slice(b),
            };
            match self.run_raw(command, stdin, &mut collect).await? {
                RunEnd::Exited(exit) if exit.success() => return Ok(Output { stdout }),
                RunEnd::Exited(exit) => {
                    let err = String::from_utf8_lossy(&stderr);
                    return Err(TransportError::Other(format!(
                        "{what} on {} failed with {exit}: {}",
                        self.target.name,
                        tail_lines(&err, 10)
                    )));
                }
                RunEnd::Lost(why) => {
                    tracing::warn!(host = %self.target.name, %why, "SSH connection lost; retrying {what} once");
                    first_loss = Some(why);
                }
            }
        }
        Err(TransportError::Unreachable(format!(
            "{what} on {}: the SSH connection dropped twice ({})",
            self.target.name,
            first_loss.unwrap_or_default()
        )))
    }
}

fn signal_number(sig: &russh::Sig) -> i32 {
    use russh::Sig;
    match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::USR1 => 10,
        _ => -1,
    }
}

/// The last `n` non-empty lines of `s`, indented, or `(no output)`.
pub(crate) fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "(no output)".into();
    }
    lines[lines.len().saturating_sub(n)..].join("\n  ")
}
