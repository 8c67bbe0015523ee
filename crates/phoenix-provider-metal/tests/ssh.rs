//! The metal resources on a host reached over SSH: a real OpenSSH `sshd` on
//! 127.0.0.1 with keys made for this run (see peers/). Files, services,
//! commands and checks through the provider; host-key refusal and first use;
//! a failing command's stderr tail; a connection dropped mid-command; a
//! timed-out command's process group killed on the host; file owners; a
//! supervised service restarted; services as systemd units (driven by
//! docker-systemctl-replacement, a systemctl that runs units without a
//! systemd daemon, confined with `--root` to a directory of the test).

mod peers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peers::{Sshd, free_port};
use phoenix_core::provider::*;
use phoenix_core::state::Ownership;
use phoenix_core::{Attrs, ResourceAddr, Value};
use phoenix_provider_metal::MetalProvider;
use phoenix_provider_metal::schemas::{EXEC, FILE, HTTP_CHECK, SERVICE};
use serde_json::json;

struct Host {
    sshd: Sshd,
    /// The host's root (on the same machine here, but reached only over SSH).
    root: PathBuf,
    project: tempfile::TempDir,
}

fn host() -> Host {
    let sshd = Sshd::start();
    let root = sshd.dir.path().join("root");
    Host { sshd, root, project: tempfile::tempdir().unwrap() }
}

impl Host {
    fn provider(&self, known_hosts: &Path, check: &str) -> Result<MetalProvider, ProviderError> {
        self.provider_with(known_hosts, check, json!({}))
    }

    /// With more keys in the host's table (`init`, `systemctl`...).
    fn provider_with(&self, known_hosts: &Path, check: &str, extra: Value) -> Result<MetalProvider, ProviderError> {
        let mut host = json!({
            "transport": "ssh", "address": "127.0.0.1", "port": self.sshd.port, "user": self.sshd.user,
            "key": self.sshd.key.display().to_string(), "root": self.root.display().to_string(),
            "host_key_check": check, "connect_attempts": 2,
        });
        for (k, v) in extra.as_object().unwrap() {
            host[k] = v.clone();
        }
        let config = json!({ "known_hosts": known_hosts.display().to_string(), "hosts": { "box": host } });
        let p = MetalProvider::new();
        p.configure(&ProviderContext {
            environment: "sshtest".into(),
            instance: None,
            project_dir: self.project.path().to_path_buf(),
            data_dir: self.project.path().join(".phoenix"),
            config: serde_json::from_value(config).unwrap(),
        })?;
        Ok(p)
    }
}

fn addr(name: &str) -> ResourceAddr {
    ResourceAddr::parse(name).unwrap()
}

fn ownership(name: &str) -> Ownership {
    Ownership { environment: "sshtest".into(), instance: None, resource: addr(name), lineage: lineage().to_string(), expires_at: None }
}

/// This run's lineage: every owner mark of this test binary ends with it, so
/// its reapers and searches never reach a concurrent run's processes (nor a
/// leftover of an earlier run whose pid this process got again).
fn lineage() -> &'static str {
    static LINEAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINEAGE.get_or_init(|| {
        // Unique in its first 8 characters too: a systemd unit name keeps only those.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let pid = std::process::id();
        format!("{:08x}-{pid}", nanos ^ pid.wrapping_mul(2_654_435_761))
    })
}

fn collecting() -> (LogSink, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    (Arc::new(move |_: &ResourceAddr, line: &str| l.lock().unwrap().push(line.to_string())), lines)
}

fn with_host(mut inputs: Value) -> Attrs {
    inputs["host"] = json!("box");
    serde_json::from_value(inputs).unwrap()
}

async fn create(p: &MetalProvider, ty: &str, name: &str, inputs: Value, log: LogSink) -> Result<Attrs, ProviderError> {
    p.create(CreateRequest {
        addr: addr(name),
        type_name: ty.into(),
        inputs: with_host(inputs),
        ownership: ownership(name),
        idempotency_token: format!("t-{name}"),
        log,
    })
    .await
}

async fn delete(p: &MetalProvider, ty: &str, name: &str, inputs: Value, outputs: Attrs) -> Result<(), ProviderError> {
    let (log, _) = collecting();
    p.delete(DeleteRequest { addr: addr(name), type_name: ty.into(), inputs: with_host(inputs), outputs, ownership: ownership(name), log })
        .await
}

async fn refresh(p: &MetalProvider, ty: &str, name: &str, inputs: Value, outputs: &Attrs) -> Option<Observed> {
    let item = RefreshItem { addr: addr(name), type_name: ty.into(), inputs: with_host(inputs), outputs: outputs.clone() };
    p.refresh(vec![item]).await.pop().unwrap().unwrap()
}

/// Live processes whose environment holds `PHOENIX_OWNER=<owner>` (the host is this machine).
fn marked(owner: &str) -> Vec<u32> {
    let want = format!("PHOENIX_OWNER={owner}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(env) = std::fs::read(e.path().join("environ")) else { continue };
        if env.split(|b| *b == 0).any(|v| v == want.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// The process group of a process.
fn pgid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split_whitespace().nth(2)?.parse().ok()
}

/// Kills whatever a failed test left with this owner mark (this run's own:
/// see [`lineage`]), and says which.
struct Reaper(String);
impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in marked(&self.0) {
            eprintln!("reaper: killing pid {pid} left by this test ({})", self.0);
            let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    }
}

fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_services_commands_and_checks_over_ssh() {
    let h = host();
    let _reaper = Reaper(ownership("web").key());
    let p = h.provider(&h.sshd.known_hosts(), "strict").unwrap();
    let (log, lines) = collecting();

    // A file, written atomically with its mode, read back, drift detected.
    let file_in = json!({"path": "site/index.html", "content": "hello over ssh\n", "mode": "0640"});
    let file_out = create(&p, FILE, "index", file_in.clone(), log.clone()).await.unwrap();
    let path = h.root.join("site/index.html");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello over ssh\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    assert_eq!(file_out["abs_path"], json!(path.display().to_string()));
    assert_eq!(refresh(&p, FILE, "index", file_in.clone(), &file_out).await.unwrap().inputs, with_host(file_in.clone()));
    std::fs::write(&path, "changed by hand\n").unwrap();
    let seen = refresh(&p, FILE, "index", file_in.clone(), &file_out).await.unwrap();
    assert_eq!(seen.inputs["content"], json!("changed by hand\n"), "drift is read back over SSH");

    // A command: output streamed line by line, secrets passed through stdin, not argv.
    let exec_in = json!({"command": "echo one; echo two; echo \"token=$TOKEN\"", "environment": {"TOKEN": "s3cret"}});
    let out = create(&p, EXEC, "hook", exec_in, log.clone()).await.unwrap();
    assert_eq!(out["exit_code"], json!(0));
    assert_eq!(out["stdout"], json!("one\ntwo\ntoken=s3cret"));
    {
        let lines = lines.lock().unwrap();
        assert!(lines.iter().any(|l| l == "one") && lines.iter().any(|l| l == "two"), "{lines:?}");
        assert!(!lines.iter().any(|l| l.contains("PGID")), "the transport's own lines stay out of the log: {lines:?}");
    }

    // A failing command: its stderr tail is in the error.
    let err = create(&p, EXEC, "bad", json!({"command": "echo doing; echo 'disk full' >&2; exit 3"}), log.clone()).await.unwrap_err();
    assert!(err.message.contains("exit code 3") && err.message.contains("disk full"), "{}", err.message);

    // A service: detached, marked, answering; found again by its mark; stopped.
    let port = free_port();
    let svc_in = json!({"command": format!("exec python3 -m http.server {port} --bind 127.0.0.1 --directory site")});
    let svc_out = create(&p, SERVICE, "web", svc_in.clone(), log.clone()).await.unwrap();
    let pid = svc_out["pid"].as_u64().unwrap() as u32;
    // The service is its supervisor (the group leader) and the command it runs, both in one group.
    let procs = marked(&ownership("web").key());
    assert!(procs.contains(&pid) && procs.len() == 2, "supervisor and command: {procs:?}");
    assert!(procs.iter().all(|p| pgid(*p) == Some(pid)), "all in the service's process group: {procs:?}");
    let check_in =
        json!({"url": format!("http://127.0.0.1:{port}/index.html"), "contains": "changed", "timeout_secs": 20, "interval_ms": 50});
    create(&p, HTTP_CHECK, "ready", check_in, log.clone()).await.unwrap();
    // The same check made from the host's side (curl over SSH), and one that cannot pass.
    let on_host = json!({"url": format!("http://127.0.0.1:{port}/index.html"), "contains": "changed", "from": "host", "timeout_secs": 20, "interval_ms": 100});
    let out = create(&p, HTTP_CHECK, "ready-on-host", on_host.clone(), log.clone()).await.unwrap();
    assert_eq!(out["status"], json!(200));
    assert!(refresh(&p, HTTP_CHECK, "ready-on-host", on_host, &out).await.is_some());
    let dead = json!({"url": format!("http://127.0.0.1:{}/", free_port()), "from": "host", "timeout_secs": 2, "interval_ms": 200});
    let err = create(&p, HTTP_CHECK, "dead", dead, log.clone()).await.unwrap_err();
    assert!(err.message.contains("from the host") && err.message.contains("did not return status 200"), "{}", err.message);
    assert!(refresh(&p, SERVICE, "web", svc_in.clone(), &svc_out).await.is_some());
    let adopted = p
        .adopt(AdoptRequest {
            addr: addr("web"),
            type_name: SERVICE.into(),
            inputs: with_host(svc_in.clone()),
            ownership: ownership("web"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(adopted.outputs["pid"], json!(pid));
    assert!(h.root.join(".phoenix-metal/logs/web.log").exists());
    delete(&p, SERVICE, "web", svc_in.clone(), svc_out.clone()).await.unwrap();
    assert!(wait_until(5, || marked(&ownership("web").key()).is_empty()), "the service is stopped");
    assert!(refresh(&p, SERVICE, "web", svc_in, &svc_out).await.is_none());

    // Deleting everything leaves no trace under the root.
    delete(&p, FILE, "index", file_in, file_out).await.unwrap();
    delete(&p, EXEC, "hook", json!({"command": "true"}), Attrs::new()).await.unwrap();
    assert!(!h.root.exists(), "left: {:?}", std::fs::read_dir(&h.root).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>()));
}

#[tokio::test]
async fn a_wrong_host_key_is_refused_before_anything_is_sent() {
    let h = host();
    let p = h.provider(&h.sshd.wrong_known_hosts(), "accept-new").unwrap();
    let (log, _) = collecting();
    let err = create(&p, FILE, "f", json!({"path": "x.txt", "content": "x"}), log).await.unwrap_err();
    assert!(err.message.contains("host key verification failed"), "{}", err.message);
    assert!(err.message.contains("not the key recorded") && err.message.contains("SHA256:"), "{}", err.message);
    assert_eq!(err.class(), ErrorClass::Permanent, "a key mismatch is never retried");
    assert!(!h.root.exists(), "nothing was written");
}

#[tokio::test]
async fn an_unknown_host_is_refused_unless_accept_new_records_it() {
    let h = host();
    let known = h.sshd.dir.path().join("fresh_known_hosts");
    let strict = h.provider(&known, "strict").unwrap();
    let (log, _) = collecting();
    let err = create(&strict, FILE, "f", json!({"path": "x.txt", "content": "x"}), log.clone()).await.unwrap_err();
    assert!(err.message.contains("is not in") && err.message.contains("accept-new"), "{}", err.message);
    assert!(!known.exists());

    let tofu = h.provider(&known, "accept-new").unwrap();
    create(&tofu, FILE, "f", json!({"path": "x.txt", "content": "x"}), log.clone()).await.unwrap();
    let recorded = std::fs::read_to_string(&known).unwrap();
    assert!(recorded.contains(&format!("[127.0.0.1]:{}", h.sshd.port)) && recorded.contains(&h.sshd.host_key_pub), "{recorded}");
    // From now on strict checking accepts it.
    let strict = h.provider(&known, "strict").unwrap();
    create(&strict, FILE, "g", json!({"path": "y.txt", "content": "y"}), log).await.unwrap();
    assert!(h.root.join("y.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_command_is_reported_and_the_command_stopped() {
    let h = host();
    let owner = ownership("long").key();
    let _reaper = Reaper(owner.clone());
    let p = h.provider(&h.sshd.known_hosts(), "strict").unwrap();
    let (log, lines) = collecting();
    let cutter = {
        let lines = lines.clone();
        let owner = owner.clone();
        let sshd_pid = h.sshd.pid();
        std::thread::spawn(move || {
            // Once the command runs on the host, cut every SSH connection.
            assert!(wait_until(20, || lines.lock().unwrap().iter().any(|l| l == "started")), "the command never started");
            assert!(wait_until(5, || !marked(&owner).is_empty()));
            let mut n = 0;
            for pid in peers::children_of(sshd_pid) {
                let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
                n += 1;
            }
            n
        })
    };
    let err = create(&p, EXEC, "long", json!({"command": "echo started; sleep 60; echo finished"}), log).await.unwrap_err();
    assert!(cutter.join().unwrap() > 0, "a connection was cut");
    assert!(err.message.contains("dropped while the command was running"), "{}", err.message);
    assert!(err.message.contains("was stopped over a new connection") || err.message.contains("had already ended"), "{}", err.message);
    assert!(wait_until(5, || marked(&owner).is_empty()), "the command does not go on silently: {:?}", marked(&owner));
    assert!(!lines.lock().unwrap().iter().any(|l| l == "finished"));
    // The transport reconnects for what comes next.
    let (log, _) = collecting();
    create(&p, FILE, "after", json!({"path": "after.txt", "content": "ok"}), log).await.unwrap();
    assert!(h.root.join("after.txt").exists());
}

#[tokio::test]
async fn a_timed_out_command_is_killed_on_the_host() {
    let h = host();
    let owner = ownership("slow").key();
    let _reaper = Reaper(owner.clone());
    let p = h.provider(&h.sshd.known_hosts(), "strict").unwrap();
    let (log, _) = collecting();
    let started = Instant::now();
    let err = create(&p, EXEC, "slow", json!({"command": "sleep 60 & sleep 60", "timeout_secs": 1}), log).await.unwrap_err();
    assert!(err.message.contains("timed out after 1s"), "{}", err.message);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(wait_until(5, || marked(&owner).is_empty()), "the whole process group is gone: {:?}", marked(&owner));
}

#[tokio::test]
async fn an_unreachable_host_is_retried_then_reported() {
    let h = host();
    let p = MetalProvider::new();
    let config = json!({"known_hosts": h.sshd.known_hosts().display().to_string(), "hosts": {"box": {
        "transport": "ssh", "address": "127.0.0.1", "port": free_port(), "user": "nobody",
        "key": h.sshd.key.display().to_string(), "root": "/tmp/phoenix-never", "connect_attempts": 3}}});
    p.configure(&ProviderContext {
        environment: "sshtest".into(),
        instance: None,
        project_dir: h.project.path().to_path_buf(),
        data_dir: h.project.path().join(".phoenix"),
        config: serde_json::from_value(config).unwrap(),
    })
    .unwrap();
    let (log, _) = collecting();
    let err = create(&p, FILE, "f", json!({"path": "x", "content": "x"}), log).await.unwrap_err();
    assert!(err.message.contains("cannot reach box over SSH") && err.message.contains("after 3 attempts"), "{}", err.message);
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_gets_its_owner_and_owner_drift_is_seen() {
    let h = host();
    let p = h.provider(&h.sshd.known_hosts(), "strict").unwrap();
    let (log, _) = collecting();
    let input = json!({"path": "etc/app.conf", "content": "x=1\n", "mode": "0640", "owner": "nobody:nogroup"});
    let out = create(&p, FILE, "conf", input.clone(), log).await.unwrap();
    let path = h.root.join("etc/app.conf");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&path).unwrap();
    let nobody = String::from_utf8(std::process::Command::new("id").args(["-u", "nobody"]).output().unwrap().stdout).unwrap();
    assert_eq!(meta.uid().to_string(), nobody.trim(), "chowned over SSH before the rename");
    assert_eq!(refresh(&p, FILE, "conf", input.clone(), &out).await.unwrap().inputs, with_host(input.clone()), "no drift");
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    let seen = refresh(&p, FILE, "conf", input.clone(), &out).await.unwrap();
    assert_eq!(seen.inputs["owner"], json!("root:root"), "the owner drift is read back");
    let err = create(&p, FILE, "bad", json!({"path": "x", "content": "", "owner": "no-such-user-here"}), collecting().0).await;
    assert!(err.unwrap_err().message.contains("no-such-user-here"));
    delete(&p, FILE, "conf", input, out).await.unwrap();
    assert!(!path.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_service_comes_back_and_a_start_that_fails_at_once_is_reported() {
    let h = host();
    let _reaper = (Reaper(ownership("flaky").key()), Reaper(ownership("broken").key()));
    let p = h.provider_with(&h.sshd.known_hosts(), "strict", json!({"init": "process"})).unwrap();
    // Runs two seconds, then fails: the supervisor starts it again (on-failure is the default).
    let runs = h.root.join("runs");
    let flaky = json!({"command": format!("echo run >> {}; sleep 2; exit 1", runs.display())});
    let out = create(&p, SERVICE, "flaky", flaky.clone(), collecting().0).await.unwrap();
    assert_eq!(out["manager"], json!("process"));
    let count = || std::fs::read_to_string(&runs).map(|s| s.lines().count()).unwrap_or(0);
    assert!(wait_until(10, || count() >= 2), "restarted after it failed: {} runs", count());
    assert!(refresh(&p, SERVICE, "flaky", flaky.clone(), &out).await.is_some(), "the service as a whole is up");
    delete(&p, SERVICE, "flaky", flaky, out).await.unwrap();
    assert!(wait_until(5, || marked(&ownership("flaky").key()).is_empty()), "supervisor and command stopped");

    let err = create(&p, SERVICE, "broken", json!({"command": "echo 'config missing' >&2; exit 3"}), collecting().0).await.unwrap_err();
    assert!(err.message.contains("exited within") && err.message.contains("config missing"), "{}", err.message);
    assert!(wait_until(5, || marked(&ownership("broken").key()).is_empty()), "not left restarting in a loop");
}

/// `python3 systemctl3.py --root=DIR`: the docker-systemctl-replacement that
/// `tests/run` installs. Its per-unit lock files go to `/run/systemd` even
/// with `--root`; `-c _notify_socket_folder` keeps them inside the root too.
fn systemctl(root: &Path) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys, importlib.util as u; print(sys.executable); print(u.find_spec('systemctl2.systemctl3').origin)"])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let (Some(python), Some(script)) = (lines.next(), lines.next()) else {
        panic!("docker-systemctl-replacement is not installed (tests/run installs it): {}", String::from_utf8_lossy(&out.stderr))
    };
    format!("{python} {script} --root={root} -c _notify_socket_folder={root}/run/systemd", root = root.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_on_a_systemd_host_is_a_unit_enabled_started_and_removed() {
    let h = host();
    // systemctl3.py keeps paths under its --root as they are: the host's root lives inside it.
    let sys_root = h.sshd.dir.path().join("sys/root");
    let unit_dir = sys_root.join("etc/systemd/system");
    std::fs::create_dir_all(&unit_dir).unwrap();
    let root = sys_root.join("srv");
    let host = Host { sshd: h.sshd, root: root.clone(), project: h.project };
    let extra = json!({"init": "systemd", "systemctl": systemctl(&sys_root), "unit_dir": unit_dir.display().to_string()});
    let p = host.provider_with(&host.sshd.known_hosts(), "strict", extra).unwrap();
    let _reaper = Reaper(ownership("api").key());

    let port = free_port();
    let command = |greeting: &str| {
        json!({
            "command": format!("echo \"$GREETING from $PHOENIX_OWNER\" > greeting.txt; exec python3 -m http.server {port} --bind 127.0.0.1"),
            "environment": {"GREETING": greeting},
        })
    };
    let input = command("s3cret-hello");
    let out = create(&p, SERVICE, "api", input.clone(), collecting().0).await.unwrap();
    let unit = out["unit"].as_str().unwrap().to_string();
    assert_eq!(out["manager"], json!("systemd"));
    assert!(unit.starts_with("phoenix-sshtest-api-") && unit.ends_with(".service"), "{unit}");
    let unit_text = std::fs::read_to_string(unit_dir.join(&unit)).unwrap();
    assert!(unit_text.contains("ExecStart=/bin/sh \"") && unit_text.contains("Restart=on-failure"), "{unit_text}");
    assert!(!unit_text.contains("s3cret"), "the environment's values stay out of the unit");
    let env_file = root.join(".phoenix-metal/env/api.env");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(unit_dir.join("multi-user.target.wants").join(&unit).exists(), "enabled");
    // Started by systemctl with the environment file and the owner mark.
    let greeting = || std::fs::read_to_string(root.join("greeting.txt")).unwrap_or_default();
    assert!(wait_until(10, || greeting().contains("s3cret-hello from sshtest")), "{:?}", greeting());
    let pid = out["pid"].as_u64().unwrap() as u32;
    assert!(pid > 1 && marked(&ownership("api").key()).contains(&pid), "MainPID is the marked service");
    assert!(refresh(&p, SERVICE, "api", input.clone(), &out).await.is_some());

    // An update rewrites the unit and restarts it: a new main process with the new environment.
    let changed = command("bonjour");
    let updated = p
        .update(UpdateRequest {
            addr: addr("api"),
            type_name: SERVICE.into(),
            prior_inputs: with_host(input.clone()),
            prior_outputs: out.clone(),
            inputs: with_host(changed.clone()),
            changed: vec!["environment".into()],
            ownership: ownership("api"),
            log: collecting().0,
        })
        .await
        .unwrap();
    assert_ne!(updated["pid"], out["pid"], "restarted");
    assert!(wait_until(10, || std::fs::read_to_string(root.join("greeting.txt")).is_ok_and(|g| g.contains("bonjour"))));

    // Stopped out of band: refresh sees it gone, so the next plan starts it again.
    let sc = systemctl(&sys_root);
    let stop = std::process::Command::new("sh").arg("-c").arg(format!("{sc} stop {unit}")).output().unwrap();
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    assert!(refresh(&p, SERVICE, "api", changed.clone(), &updated).await.is_none());
    let again = create(&p, SERVICE, "api", changed.clone(), collecting().0).await.unwrap();
    assert_eq!(again["unit"], json!(unit), "the same unit, started again");

    delete(&p, SERVICE, "api", changed.clone(), again.clone()).await.unwrap();
    assert!(!unit_dir.join(&unit).exists() && !unit_dir.join("multi-user.target.wants").join(&unit).exists(), "disabled and removed");
    assert!(!env_file.exists() && !root.join(".phoenix-metal/run/api.sh").exists(), "the environment file and script are gone");
    assert!(wait_until(5, || marked(&ownership("api").key()).is_empty()), "stopped");
    assert!(refresh(&p, SERVICE, "api", changed, &again).await.is_none());
}
