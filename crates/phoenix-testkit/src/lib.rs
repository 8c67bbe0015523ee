//! Test support: real emulators on 127.0.0.1 and free ports. Used only as a
//! dev-dependency; nothing here stands in for a provider.

pub mod conformance;
pub mod fault_proxy;
pub mod requests;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on now, and one no other caller in this
/// process has been given.
///
/// Not `bind(127.0.0.1:0)`: that hands out a port from the kernel's ephemeral
/// range, which outgoing connections draw their source ports from too. In the
/// second or so before a server started on it binds, a client connection (or
/// the readiness probe itself, connecting to its own source port) can take the
/// port, and the test then talks to the wrong peer or to none. So ports come
/// from below the ephemeral range, walked by a per-process counter that starts
/// at an offset taken from the pid, so concurrent test binaries rarely meet;
/// each candidate is bind-checked.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = unclaimed_range();
    let span = u32::from(high - low);
    let start = (std::process::id().wrapping_mul(2_654_435_761)) % span;
    for _ in 0..span {
        let port = low + ((start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}")
}

/// Ports below the kernel's ephemeral range (Linux reports it in procfs;
/// 32768 is its default lower bound).
fn unclaimed_range() -> (u16, u16) {
    let low_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if low_ephemeral > 12_000 { (10_000, low_ephemeral) } else { (50_000, 65_000) }
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A `moto_server` (AWS emulator) of its own, on a free loopback port,
/// killed (by pid) when dropped. `tests/run` installs moto.
pub struct Moto {
    child: Child,
    pub port: u16,
    /// Scratch space, e.g. for a credentials file.
    pub dir: tempfile::TempDir,
}

impl Moto {
    pub const REGION: &'static str = "eu-west-1";

    pub fn start() -> Moto {
        Self::spawn(Stdio::null(), &[])
    }

    /// A moto that checks every request against its own IAM users
    /// (`INITIAL_NO_AUTH_ACTION_COUNT=0`): keys it never issued are refused
    /// (`InvalidClientTokenId`), as AWS refuses them.
    pub fn start_enforcing_auth() -> Moto {
        Self::spawn(Stdio::null(), &[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    /// Starts moto with its request log (one line per API request) written to `log`.
    pub fn start_logged(log: &std::path::Path) -> Moto {
        let file = std::fs::File::create(log).expect("create the moto log");
        Self::spawn(Stdio::from(file), &[])
    }

    fn spawn(log: Stdio, env: &[(&str, &str)]) -> Moto {
        let port = free_port();
        let dir = tempfile::tempdir().expect("a temp dir");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("moto_server is installed (tests/run installs it: pip install 'moto[server]')");
        let mut moto = Moto { child, port, dir };
        if !wait_for_port(port, Duration::from_secs(30)) {
            let _ = moto.child.kill();
            panic!("moto_server did not start on port {port}");
        }
        std::fs::write(moto.credentials_file(), "[moto]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
            .expect("write credentials");
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A shared-credentials file with a `moto` profile of fake keys.
    pub fn credentials_file(&self) -> std::path::PathBuf {
        self.dir.path().join("credentials")
    }

    /// Environment for a `phoenix` process to use this moto through the standard AWS variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", Self::REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
