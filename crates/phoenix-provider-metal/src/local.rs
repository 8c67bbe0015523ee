//! The `local` transport: this machine, through std/tokio and `/proc`.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Gid, Group, Pid, Uid, User};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::transport::{
    ExecSpec, ExitInfo, FileInfo, LineSink, OutputStream, OwnerMark, ServiceSpec, StopOutcome, Transport, TransportError,
};

/// How long a command's output may stay open after the command exited (a
/// background child holding the pipe): then the rest is not waited for.
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// Between SIGTERM and SIGKILL when an exec times out.
const EXEC_KILL_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(25);

/// Runs everything on the machine Phoenix runs on.
#[derive(Debug, Default, Clone)]
pub struct LocalTransport;

impl LocalTransport {
    pub fn new() -> Self {
        Self
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, TransportError> + Send + 'static) -> Result<T, TransportError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| TransportError::Other(format!("a file operation failed to run: {e}")))?
}

fn check_workdir(dir: &Path) -> Result<(), TransportError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(TransportError::Other(format!("working directory `{}` is not a directory", dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(TransportError::MissingWorkdir(dir.to_path_buf())),
        Err(e) => Err(TransportError::io("use as working directory", dir, e)),
    }
}

#[async_trait]
impl Transport for LocalTransport {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn exec(&self, spec: &ExecSpec, on_line: LineSink<'_>) -> Result<ExitInfo, TransportError> {
        check_workdir(&spec.workdir)?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&spec.command)
            .current_dir(&spec.workdir)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| TransportError::Other(format!("cannot run `sh -c`: {e}")))?;
        let pgid = child.id().map(|p| p as i32);
        // Kills the whole group if this future is dropped (cancelled) or times out.
        let mut guard = GroupGuard(pgid);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();

        let run = async {
            let mut pumps = std::pin::pin!(async {
                tokio::join!(pump(stdout, OutputStream::Stdout, on_line), pump(stderr, OutputStream::Stderr, on_line))
            });
            let mut pumps_done = false;
            let status = loop {
                tokio::select! {
                    s = child.wait() => break s,
                    _ = &mut pumps, if !pumps_done => pumps_done = true,
                }
            };
            if !pumps_done {
                // Output still open: a background process inherited it. Take what is there.
                let _ = tokio::time::timeout(DRAIN_GRACE, &mut pumps).await;
            }
            status
        };
        let status = match spec.timeout {
            Some(t) => match tokio::time::timeout(t, run).await {
                Ok(s) => s,
                Err(_) => {
                    if let Some(g) = pgid {
                        signal_group(g, Signal::SIGTERM);
                        if tokio::time::timeout(EXEC_KILL_GRACE, child.wait()).await.is_err() {
                            signal_group(g, Signal::SIGKILL);
                        }
                    }
                    // The guard SIGKILLs whatever of the group is left.
                    let _ = tokio::time::timeout(EXEC_KILL_GRACE, child.wait()).await;
                    return Err(TransportError::Timeout(t));
                }
            },
            None => run.await,
        };
        let status = status.map_err(|e| TransportError::Other(format!("waiting for `sh -c`: {e}")))?;
        // Finished on its own: background processes it started are left alone.
        guard.0 = None;
        Ok(ExitInfo { code: status.code(), signal: status.signal() })
    }

    async fn write_file(&self, path: &Path, content: &[u8], mode: u32, owner: Option<&str>) -> Result<(), TransportError> {
        let path = path.to_path_buf();
        let content = content.to_vec();
        let ids = owner.map(owner_ids).transpose()?;
        blocking(move || write_atomic(&path, &content, mode, ids).map_err(|e| TransportError::io("write", &path, e))).await
    }

    async fn read_file(&self, path: &Path) -> Result<Option<FileInfo>, TransportError> {
        let path = path.to_path_buf();
        blocking(move || {
            let content = match fs::read(&path) {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(TransportError::io("read", &path, e)),
            };
            let meta = fs::metadata(&path).map_err(|e| TransportError::io("read", &path, e))?;
            let mode = meta.permissions().mode() & 0o7777;
            let sha256 = sha256_hex(&content);
            Ok(Some(FileInfo { content, sha256, mode, owner: owner_names(meta.uid(), meta.gid()) }))
        })
        .await
    }

    async fn tail_file(&self, path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, TransportError> {
        let path = path.to_path_buf();
        blocking(move || {
            let tail = || -> io::Result<Vec<u8>> {
                let mut f = fs::File::open(&path)?;
                let len = f.metadata()?.len();
                f.seek(SeekFrom::Start(len.saturating_sub(max_bytes)))?;
                let mut buf = Vec::new();
                f.read_to_end(&mut buf)?;
                Ok(buf)
            };
            match tail() {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(TransportError::io("read", &path, e)),
            }
        })
        .await
    }

    async fn remove_file(&self, path: &Path) -> Result<bool, TransportError> {
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(TransportError::io("remove", path, e)),
        }
    }

    async fn create_dir_all(&self, path: &Path) -> Result<(), TransportError> {
        tokio::fs::create_dir_all(path).await.map_err(|e| TransportError::io("create directory", path, e))
    }

    async fn remove_empty_dirs(&self, dirs: &[PathBuf]) -> Result<(), TransportError> {
        let dirs = dirs.to_vec();
        blocking(move || {
            for d in dirs {
                // Not empty, already gone, or not ours to remove: all fine.
                if let Err(e) = fs::remove_dir(&d) {
                    tracing::trace!(dir = %d.display(), error = %e, "kept directory");
                }
            }
            Ok(())
        })
        .await
    }

    async fn start_service(&self, spec: &ServiceSpec) -> Result<u32, TransportError> {
        check_workdir(&spec.workdir)?;
        let log_path = spec.log_path.clone();
        let name = spec.name.clone();
        let command = spec.command.clone();
        let log = blocking(move || open_log(&log_path, &name, &command).map_err(|e| TransportError::io("open log", &log_path, e))).await?;
        let err_log = log.try_clone().map_err(|e| TransportError::io("open log", &spec.log_path, e))?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(crate::supervise::supervised(&spec.command, spec.restart))
            .current_dir(&spec.workdir)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .envs(spec.mark.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            // Its own group: Ctrl-C on Phoenix does not reach it, and stop signals the whole tree.
            .process_group(0)
            .kill_on_drop(false);
        let child = cmd.spawn().map_err(|e| TransportError::Other(format!("cannot start service `{}`: {e}", spec.name)))?;
        let pid = child.id().ok_or_else(|| TransportError::Other(format!("service `{}` exited at once", spec.name)))?;
        // Not held: tokio reaps it in the background if it exits while Phoenix
        // runs; after Phoenix exits it is re-parented and keeps running.
        drop(child);
        Ok(pid)
    }

    async fn service_running(&self, pid: u32, mark: &OwnerMark) -> Result<bool, TransportError> {
        Ok(proc_running_with_mark(pid, mark))
    }

    async fn stop_service(&self, pid: u32, mark: &OwnerMark, timeout: Duration) -> Result<StopOutcome, TransportError> {
        if pid <= 1 {
            return Ok(StopOutcome::NotRunning);
        }
        let pgid = pid as i32;
        let owned = proc_running_with_mark(pid, mark) || {
            let mark = mark.clone();
            blocking(move || Ok(group_members(pgid).iter().any(|&p| has_mark(p, &mark)))).await?
        };
        if !owned {
            return Ok(StopOutcome::NotRunning);
        }
        signal_group(pgid, Signal::SIGTERM);
        if wait_group_gone(pgid, timeout).await {
            return Ok(StopOutcome::Terminated);
        }
        signal_group(pgid, Signal::SIGKILL);
        if wait_group_gone(pgid, Duration::from_secs(5)).await {
            Ok(StopOutcome::Killed)
        } else {
            Err(TransportError::Other(format!("process group {pgid} is still alive after SIGKILL")))
        }
    }

    async fn find_services(&self, mark: &OwnerMark) -> Result<Vec<u32>, TransportError> {
        let mark = mark.clone();
        blocking(move || Ok(find_marked_leaders(&mark))).await
    }
}

/// SIGKILLs a process group when dropped, unless disarmed (`.0 = None`).
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(g) = self.0 {
            signal_group(g, Signal::SIGKILL);
        }
    }
}

fn signal_group(pgid: i32, signal: Signal) {
    if pgid <= 1 {
        return;
    }
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, %signal, error = %e, "cannot signal process group"),
    }
}

async fn pump(stream: Option<impl AsyncRead + Unpin>, which: OutputStream, on_line: LineSink<'_>) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                on_line(which, &String::from_utf8_lossy(&buf));
            }
        }
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `user` or `user:group` (names or numbers) as ids; a user alone keeps the file's group.
fn owner_ids(owner: &str) -> Result<(Option<Uid>, Option<Gid>), TransportError> {
    let (user, group) = match owner.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (owner, None),
    };
    let unknown = |what: &str, name: &str| TransportError::Other(format!("no {what} `{name}` on this machine (owner `{owner}`)"));
    let uid = match user.parse::<u32>() {
        Ok(n) => Uid::from_raw(n),
        Err(_) => User::from_name(user).ok().flatten().ok_or_else(|| unknown("user", user))?.uid,
    };
    let gid = match group {
        None => None,
        Some(g) => Some(match g.parse::<u32>() {
            Ok(n) => Gid::from_raw(n),
            Err(_) => Group::from_name(g).ok().flatten().ok_or_else(|| unknown("group", g))?.gid,
        }),
    };
    Ok((Some(uid), gid))
}

/// `user:group` by name, by number where there is no name (as `stat -c %U:%G` prints).
fn owner_names(uid: u32, gid: u32) -> String {
    let user = User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string());
    let group = Group::from_gid(Gid::from_raw(gid)).ok().flatten().map(|g| g.name).unwrap_or_else(|| gid.to_string());
    format!("{user}:{group}")
}

fn write_atomic(path: &Path, content: &[u8], mode: u32, owner: Option<(Option<Uid>, Option<Gid>)>) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".phoenix-tmp.{}.{}", std::process::id(), TMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
        let result = (|| {
            let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(content)?;
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            if let Some((uid, gid)) = owner {
                nix::unistd::fchown(&f, uid, gid).map_err(io::Error::from)?;
            }
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        match result {
            Ok(()) => return Ok(()),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                // A concurrent delete may have pruned the (then empty) directory: make it again.
                if e.kind() == io::ErrorKind::NotFound && attempt < 3 {
                    continue;
                }
                return Err(e);
            }
        }
    }
}

fn open_log(path: &Path, name: &str, command: &str) -> io::Result<fs::File> {
    let dir = path.parent().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
    let mut attempt = 0;
    let mut f = loop {
        attempt += 1;
        fs::create_dir_all(dir)?;
        match fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path) {
            Ok(f) => break f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 3 => continue,
            Err(e) => return Err(e),
        }
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    writeln!(f, "{}{name} at unix time {now}: {command}", crate::LOG_HEADER)?;
    Ok(f)
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

// ---- /proc ----

struct ProcStat {
    state: char,
    ppid: u32,
    pgrp: i32,
    starttime: u64,
}

impl ProcStat {
    fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

fn read_stat(pid: u32) -> Option<ProcStat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        starttime: f.get(19)?.parse().ok()?,
    })
}

/// Whether the process's initial environment holds every variable of the mark.
fn has_mark(pid: u32, mark: &OwnerMark) -> bool {
    let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else { return false };
    let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
    mark.vars.iter().all(|(k, v)| {
        let want = format!("{k}={v}");
        vars.contains(&want.as_bytes())
    })
}

fn proc_running_with_mark(pid: u32, mark: &OwnerMark) -> bool {
    pid > 1 && read_stat(pid).is_some_and(|s| s.alive()) && has_mark(pid, mark)
}

fn all_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Live processes of a process group.
fn group_members(pgid: i32) -> Vec<u32> {
    all_pids().into_iter().filter(|&p| read_stat(p).is_some_and(|s| s.alive() && s.pgrp == pgid)).collect()
}

fn group_alive(pgid: i32) -> bool {
    match killpg(Pid::from_raw(pgid), None) {
        Err(_) => false,
        // Zombies still count for kill(2): look for a live member.
        Ok(()) => !group_members(pgid).is_empty(),
    }
}

async fn wait_group_gone(pgid: i32, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if !tokio::task::spawn_blocking(move || group_alive(pgid)).await.unwrap_or(true) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The main process of every service carrying `mark`: marked, leading its own
/// process group, and not the child of another marked process. Oldest first.
fn find_marked_leaders(mark: &OwnerMark) -> Vec<u32> {
    let marked: Vec<(u32, ProcStat)> = all_pids()
        .into_iter()
        .filter_map(|p| read_stat(p).filter(ProcStat::alive).map(|s| (p, s)))
        .filter(|(p, _)| has_mark(*p, mark))
        .collect();
    let pids: Vec<u32> = marked.iter().map(|(p, _)| *p).collect();
    let mut leaders: Vec<(u64, u32)> =
        marked.iter().filter(|(p, s)| s.pgrp == *p as i32 && !pids.contains(&s.ppid)).map(|(p, s)| (s.starttime, *p)).collect();
    leaders.sort();
    leaders.into_iter().map(|(_, p)| p).collect()
}
