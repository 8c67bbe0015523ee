//! Real peers on loopback for the bare-metal tests: an OpenSSH `sshd` and a
//! sushy-tools Redfish emulator, each started on a free 127.0.0.1 port with
//! keys and passwords made for this test run, and stopped (by pid) when the
//! guard drops, also when the test fails. Shared with phoenix-cli's tests
//! through `#[path]`, so it uses std, tempfile and the testkit only.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use phoenix_testkit::free_port;

fn wait_port(port: u16, secs: u64, child: &mut Child, what: &str, log: &Path) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status}: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within {secs}s: {}", std::fs::read_to_string(log).unwrap_or_default());
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn which(name: &str, fallbacks: &[&str]) -> PathBuf {
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    from_path
        .or_else(|| fallbacks.iter().map(PathBuf::from).find(|p| p.is_file()))
        .unwrap_or_else(|| panic!("`{name}` is not installed: tests/run installs it"))
}

/// Stops a child by its pid (TERM, then KILL) and reaps it.
fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").arg("-TERM").arg(&pid).stderr(Stdio::null()).status();
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// An OpenSSH server on 127.0.0.1 that lets the current user in with a key made for it.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub user: String,
    /// The client's private key (no passphrase).
    pub key: PathBuf,
    /// The server's public host key line (`ssh-ed25519 AAAA...`).
    pub host_key_pub: String,
    child: Child,
}

impl Sshd {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let keygen = which("ssh-keygen", &["/usr/bin/ssh-keygen"]);
        run(Command::new(&keygen).args(["-q", "-t", "ed25519", "-N", "", "-C", "phoenix-test-host", "-f"]).arg(d.join("host_key")));
        run(Command::new(&keygen).args(["-q", "-t", "ed25519", "-N", "", "-C", "phoenix-test-client", "-f"]).arg(d.join("client_key")));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // Privilege separation directory (needs root, as in CI).
        if !Path::new("/run/sshd").exists() {
            let _ = std::fs::create_dir_all("/run/sshd");
            let _ = Command::new("chmod").args(["0755", "/run/sshd"]).status();
        }
        let port = free_port();
        let config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\nPermitRootLogin prohibit-password\n\
             MaxSessions 30\nMaxStartups 100\nLogLevel VERBOSE\n",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let log = d.join("sshd.log");
        // sshd re-executes itself, so it must be started by absolute path.
        let mut child = Command::new(which("sshd", &["/usr/sbin/sshd"]))
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sshd starts");
        wait_port(port, 20, &mut child, "sshd", &log);
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap().trim().to_string();
        let host_key_pub =
            std::fs::read_to_string(d.join("host_key.pub")).unwrap().split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let key = d.join("client_key");
        Self { dir, port, user, key, host_key_pub, child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A known_hosts file holding this server's real key.
    pub fn known_hosts(&self) -> PathBuf {
        let p = self.dir.path().join("known_hosts");
        std::fs::write(&p, format!("[127.0.0.1]:{} {}\n", self.port, self.host_key_pub)).unwrap();
        p
    }

    /// A known_hosts file recording another key for this server (a man in the middle, a reinstalled machine).
    pub fn wrong_known_hosts(&self) -> PathBuf {
        let d = self.dir.path();
        run(Command::new(which("ssh-keygen", &[])).args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(d.join("other_key")));
        let other = std::fs::read_to_string(d.join("other_key.pub")).unwrap().split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let p = d.join("wrong_known_hosts");
        std::fs::write(&p, format!("[127.0.0.1]:{} {other}\n", self.port)).unwrap();
        p
    }

    /// Kills the per-connection sshd processes (children of the listener):
    /// every client connection drops at once, the listener stays up.
    pub fn drop_connections(&self) -> usize {
        let mut n = 0;
        for pid in children_of(self.child.id()) {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).stderr(Stdio::null()).status();
            n += 1;
        }
        n
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Session processes first (children of the listener), then the listener.
        self.drop_connections();
        stop(&mut self.child);
    }
}

/// Pids whose parent is `ppid`.
pub fn children_of(ppid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        if rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(ppid) {
            out.push(pid);
        }
    }
    out
}

/// One emulated machine of the BMC.
pub struct System {
    pub name: &'static str,
    pub uuid: &'static str,
}

/// A sushy-tools Redfish emulator (fake driver, no libvirt) with basic auth.
pub struct Sushy {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub username: String,
    pub password: String,
    child: Child,
}

impl Sushy {
    /// Every system starts powered off.
    pub fn start(systems: &[System]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let password = format!("pw-{}", std::process::id());
        let username = "admin".to_string();
        // sushy accepts bcrypt htpasswd entries only; bcrypt comes with sushy-tools.
        let hash = Command::new("python3")
            .args(["-c", "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(rounds=4)).decode())", &password])
            .output()
            .expect("python3 runs");
        assert!(hash.status.success(), "bcrypt: {}", String::from_utf8_lossy(&hash.stderr));
        std::fs::write(d.join("htpasswd"), format!("{username}:{}", String::from_utf8_lossy(&hash.stdout).trim())).unwrap();
        let systems: Vec<String> = systems
            .iter()
            .map(|s| {
                format!(
                    "{{'uuid': '{}', 'name': '{}', 'power_state': 'Off', 'nics': [{{'mac': '00:5c:52:31:3a:9c', 'ip': '127.0.0.1'}}]}}",
                    s.uuid, s.name
                )
            })
            .collect();
        let config = format!(
            "SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_AUTH_FILE = '{}'\nSUSHY_EMULATOR_STATE_DIR = '{}'\nSUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n",
            d.join("htpasswd").display(),
            d.join("state").display(),
            systems.join(", ")
        );
        std::fs::write(d.join("emulator.conf"), config).unwrap();
        let port = free_port();
        let log = d.join("sushy.log");
        let mut child = Command::new(which("sushy-emulator", &[]))
            .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string(), "--config"])
            .arg(d.join("emulator.conf"))
            // The fake driver keeps its systems in `$TMPDIR/sushy-emulator`: one per emulator, none left from an earlier run.
            .env("TMPDIR", d)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("sushy.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sushy-emulator starts");
        wait_port(port, 60, &mut child, "sushy-emulator", &log);
        Self { dir, port, username, password, child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GET a Redfish document (with the emulator's credentials): (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let auth = base64(&format!("{}:{}", self.username, self.password));
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\r\n").unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        let status = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
    }

    /// A field of a system document, crudely: `"Field": "Value"`.
    pub fn system_field(&self, uuid: &str, field: &str) -> Option<String> {
        let (_, body) = self.get(&format!("/redfish/v1/Systems/{uuid}"));
        let key = format!("\"{field}\": \"");
        let start = body.find(&key)? + key.len();
        Some(body[start..].split('"').next()?.to_string())
    }
}

impl Drop for Sushy {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn base64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
