//! The metal provider against this machine: real files in temporary
//! directories, real processes, real HTTP. Every process a test starts is
//! stopped by a guard, also when the test fails.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use phoenix_core::provider::*;
use phoenix_core::state::Ownership;
use phoenix_core::value::seal;
use phoenix_core::{Attrs, ResourceAddr, Value};
use phoenix_provider_metal::schemas::{EXEC, FILE, HTTP_CHECK, SERVICE};
use phoenix_provider_metal::{LocalTransport, MetalProvider, OwnerMark, Transport};
use serde_json::json;
use tempfile::TempDir;

// ---- harness ----

struct Env {
    dir: TempDir,
    provider: MetalProvider,
    lineage: String,
    procs: Procs,
}

fn env() -> Env {
    env_with(json!({}))
}

fn env_with(config: Value) -> Env {
    let (dir, provider) = configured(config).expect("configure");
    let lineage = dir.path().file_name().unwrap().to_string_lossy().into_owned();
    Env { dir, provider, lineage, procs: Procs::default() }
}

fn configured(config: Value) -> Result<(TempDir, MetalProvider), ProviderError> {
    let dir = tempfile::tempdir().unwrap();
    let provider = MetalProvider::new();
    provider.configure(&context(dir.path(), config))?;
    Ok((dir, provider))
}

fn context(dir: &Path, config: Value) -> ProviderContext {
    ProviderContext {
        environment: "test".into(),
        instance: None,
        project_dir: dir.to_path_buf(),
        data_dir: dir.join(".phoenix"),
        config: attrs(config),
    }
}

fn attrs(v: Value) -> Attrs {
    serde_json::from_value(v).unwrap()
}

fn addr(name: &str) -> ResourceAddr {
    ResourceAddr::parse(name).unwrap()
}

fn quiet() -> LogSink {
    Arc::new(|_: &ResourceAddr, _: &str| {})
}

fn collecting() -> (LogSink, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    (Arc::new(move |_: &ResourceAddr, line: &str| l.lock().unwrap().push(line.to_string())), lines)
}

use phoenix_testkit::free_port;

impl Env {
    fn root(&self) -> PathBuf {
        self.dir.path().join(".phoenix/work")
    }

    fn ownership(&self, name: &str) -> Ownership {
        Ownership { environment: "test".into(), instance: None, resource: addr(name), lineage: self.lineage.clone(), expires_at: None }
    }

    async fn create_with(&self, ty: &str, name: &str, inputs: Value, log: LogSink) -> Result<Attrs, ProviderError> {
        let req = CreateRequest {
            addr: addr(name),
            type_name: ty.into(),
            inputs: attrs(inputs),
            ownership: self.ownership(name),
            idempotency_token: format!("test-{name}"),
            log,
        };
        let out = self.provider.create(req).await;
        // Whatever started is stopped at the end of the test.
        if let Some(pid) = out.as_ref().ok().and_then(|o| o.get("pid")).and_then(Value::as_u64) {
            self.procs.watch(pid as u32, &self.ownership(name).key());
        }
        out
    }

    async fn create(&self, ty: &str, name: &str, inputs: Value) -> Result<Attrs, ProviderError> {
        self.create_with(ty, name, inputs, quiet()).await
    }

    async fn update(&self, ty: &str, name: &str, prior: (&Value, &Attrs), inputs: Value, changed: &[&str]) -> Result<Attrs, ProviderError> {
        let req = UpdateRequest {
            addr: addr(name),
            type_name: ty.into(),
            prior_inputs: attrs(prior.0.clone()),
            prior_outputs: prior.1.clone(),
            inputs: attrs(inputs),
            changed: changed.iter().map(|c| c.to_string()).collect(),
            ownership: self.ownership(name),
            log: quiet(),
        };
        let out = self.provider.update(req).await;
        if let Some(pid) = out.as_ref().ok().and_then(|o| o.get("pid")).and_then(Value::as_u64) {
            self.procs.watch(pid as u32, &self.ownership(name).key());
        }
        out
    }

    async fn refresh(&self, ty: &str, name: &str, inputs: &Value, outputs: &Attrs) -> Result<Option<Observed>, ProviderError> {
        let item = RefreshItem { addr: addr(name), type_name: ty.into(), inputs: attrs(inputs.clone()), outputs: outputs.clone() };
        self.provider.refresh(vec![item]).await.pop().unwrap()
    }

    async fn adopt(&self, ty: &str, name: &str, inputs: &Value) -> Result<Option<Observed>, ProviderError> {
        let req = AdoptRequest { addr: addr(name), type_name: ty.into(), inputs: attrs(inputs.clone()), ownership: self.ownership(name) };
        self.provider.adopt(req).await
    }

    async fn delete_with(&self, ty: &str, name: &str, inputs: Attrs, outputs: &Attrs, log: LogSink) -> Result<(), ProviderError> {
        let req = DeleteRequest {
            addr: addr(name),
            type_name: ty.into(),
            inputs,
            outputs: outputs.clone(),
            ownership: self.ownership(name),
            log,
        };
        self.provider.delete(req).await
    }

    async fn delete(&self, ty: &str, name: &str, inputs: &Value, outputs: &Attrs) -> Result<(), ProviderError> {
        self.delete_with(ty, name, attrs(inputs.clone()), outputs, quiet()).await
    }

    async fn services(&self, name: &str) -> Vec<u32> {
        let mark = OwnerMark { vars: vec![("PHOENIX_OWNER".into(), self.ownership(name).key())] };
        LocalTransport::new().find_services(&mark).await.unwrap()
    }
}

/// Kills (SIGKILL to the process group) every watched process that still
/// carries its owner mark, when dropped.
#[derive(Default)]
struct Procs(Mutex<Vec<(u32, String)>>);

impl Procs {
    fn watch(&self, pid: u32, owner: &str) {
        self.0.lock().unwrap().push((pid, owner.to_string()));
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (pid, owner) in self.0.lock().unwrap().drain(..) {
            if pid > 1 && environ_has(pid, &format!("PHOENIX_OWNER={owner}")) {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            reap(pid);
        }
    }
}

/// Collects the exit status of a child of this test process (a service started
/// by a runtime that is gone), so it does not stay a zombie.
fn reap(pid: u32) {
    for _ in 0..20 {
        match waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(10)),
            _ => return,
        }
    }
}

fn environ_has(pid: u32, var: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| e.split(|b| *b == 0).any(|v| v == var.as_bytes()))
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st != "Z" && st != "X")))
        .unwrap_or(false)
}

async fn wait_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} did not die");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pid_of(outputs: &Attrs) -> u32 {
    outputs["pid"].as_u64().unwrap() as u32
}

/// A tiny HTTP server answering every request with `status` and `body`.
async fn http_server(status: &'static str, body: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = sock.read(&mut buf).await;
                let resp = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

// ---- configuration ----

#[test]
fn configuration_errors_name_the_key() {
    let err = |config: Value| configured(config).err().expect("configure should fail").message;
    assert!(err(json!({"rooot": "x"})).contains("`rooot`"));
    assert!(err(json!({"hosts": {"box": {"transport": "ssh"}}})).contains("`ssh`"));
    assert!(err(json!({"hosts": {"box": {"transport": "local", "user": "me"}}})).contains("`user`"));
    assert!(err(json!({"root": 3})).contains("root"));
}

#[tokio::test]
async fn relative_root_is_under_the_project_and_hosts_are_checked() {
    let e = env_with(json!({"root": "build/metal", "hosts": {"here": {"transport": "local"}}}));
    let out = e.create(FILE, "f", json!({"host": "here", "path": "x.txt", "content": "x"})).await.unwrap();
    assert_eq!(out["abs_path"], json!(e.dir.path().join("build/metal/x.txt").display().to_string()));
    let err = e.create(FILE, "g", json!({"host": "local", "path": "y.txt", "content": "y"})).await.unwrap_err();
    assert!(err.message.contains("host `local` is not declared"), "{}", err.message);
}

// ---- metal.file ----

#[tokio::test]
async fn file_create_drift_update_delete_leaves_no_trace() {
    let e = env();
    let inputs = json!({"path": "a/b/c.txt", "content": "hello\n", "mode": "0600"});
    let out = e.create(FILE, "conf", inputs.clone()).await.unwrap();
    let path = e.root().join("a/b/c.txt");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
    assert_eq!(out["abs_path"], json!(path.display().to_string()));
    assert_eq!(out["sha256"], json!("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"));

    // Unchanged: observed inputs are the applied ones.
    let seen = e.refresh(FILE, "conf", &inputs, &out).await.unwrap().unwrap();
    assert_eq!(seen.inputs, attrs(inputs.clone()));
    assert_eq!(seen.outputs, out);

    // Changed behind Phoenix's back: the actual content and mode come back.
    std::fs::write(&path, "tampered").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let seen = e.refresh(FILE, "conf", &inputs, &out).await.unwrap().unwrap();
    assert_eq!(seen.inputs["content"], json!("tampered"));
    assert_eq!(seen.inputs["mode"], json!("0644"));
    assert_ne!(seen.outputs["sha256"], out["sha256"]);

    let new_inputs = json!({"path": "a/b/c.txt", "content": "bye", "mode": "0600"});
    let out2 = e.update(FILE, "conf", (&inputs, &out), new_inputs.clone(), &["content"]).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "bye");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
    assert_ne!(out2["sha256"], out["sha256"]);
    // No temporary files left beside it.
    assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

    e.delete(FILE, "conf", &new_inputs, &out2).await.unwrap();
    assert!(!path.exists());
    assert!(!e.root().exists(), "the emptied root is removed");
    assert!(e.dir.path().join(".phoenix").exists(), "but not above it");
    // Gone already: still fine, and refresh says so.
    e.delete(FILE, "conf", &new_inputs, &out2).await.unwrap();
    assert!(e.refresh(FILE, "conf", &new_inputs, &out2).await.unwrap().is_none());
}

#[tokio::test]
async fn file_delete_keeps_directories_still_in_use() {
    let e = env();
    let a = json!({"path": "site/a.txt", "content": "a"});
    let b = json!({"path": "site/b.txt", "content": "b"});
    let out_a = e.create(FILE, "a", a.clone()).await.unwrap();
    let out_b = e.create(FILE, "b", b.clone()).await.unwrap();
    e.delete(FILE, "a", &a, &out_a).await.unwrap();
    assert!(e.root().join("site/b.txt").exists());
    e.delete(FILE, "b", &b, &out_b).await.unwrap();
    assert!(!e.root().exists());
}

#[tokio::test]
async fn file_paths_escaping_the_root_are_rejected() {
    let e = env();
    for bad in ["../evil.txt", "a/../../evil.txt", ".phoenix-metal/x"] {
        let err = e.create(FILE, "f", json!({"path": bad, "content": "x"})).await.unwrap_err();
        assert!(err.message.contains("`path`"), "{bad}: {}", err.message);
    }
    assert!(!e.dir.path().join(".phoenix/evil.txt").exists());
    assert!(!e.root().exists());
    // The schema's validator catches it before any plan.
    let schema = phoenix_provider_metal::schemas::all().into_iter().find(|s| s.type_name == FILE).unwrap();
    let validate = schema.attr("path").unwrap().validator.unwrap();
    assert!(validate(&json!("../evil.txt")).unwrap_err().0.contains("escapes"));
    assert!(validate(&json!("ok/fine.txt")).is_ok());
}

// ---- metal.service + metal.http_check ----

#[tokio::test]
async fn service_serves_then_dies_behind_our_back() {
    let e = env();
    let port = free_port();
    let page = json!({"path": "site/healthz", "content": "all good\n"});
    let page_out = e.create(FILE, "page", page.clone()).await.unwrap();
    let svc = json!({
        "command": format!("exec python3 -m http.server {port} --bind 127.0.0.1 --directory site"),
        "environment": {"PYTHONUNBUFFERED": "1"},
        "restart_on": {"page": page_out["sha256"]},
        "stop_timeout_secs": 5,
    });
    let svc_out = e.create(SERVICE, "web", svc.clone()).await.unwrap();
    let pid = pid_of(&svc_out);
    assert!(alive(pid));
    assert!(environ_has(pid, &format!("PHOENIX_OWNER={}", e.ownership("web").key())));
    let log_path = PathBuf::from(svc_out["log_path"].as_str().unwrap());
    assert_eq!(log_path, e.root().join(".phoenix-metal/logs/web.log"));
    assert_eq!(std::fs::read_to_string(e.root().join(".phoenix-metal/run/web.pid")).unwrap().trim(), pid.to_string());

    let check = json!({"url": format!("http://127.0.0.1:{port}/healthz"), "contains": "all good", "timeout_secs": 20, "interval_ms": 50});
    let (log, lines) = collecting();
    let check_out = e.create_with(HTTP_CHECK, "ready", check.clone(), log).await.unwrap();
    assert_eq!(check_out["status"], json!(200));
    // Python takes a moment to listen: the wait was logged (or it was already up).
    assert!(lines.lock().unwrap().iter().all(|l| l.contains("waiting for status 200")));

    assert!(e.refresh(SERVICE, "web", &svc, &svc_out).await.unwrap().is_some());
    let seen = e.refresh(HTTP_CHECK, "ready", &check, &check_out).await.unwrap().unwrap();
    assert_eq!(seen.outputs, check_out);

    // Killed outside Phoenix.
    killpg(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    wait_dead(pid).await;
    // And reaped while we run (no zombie left behind), though nothing held its handle.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "pid {pid} stayed a zombie");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(e.refresh(SERVICE, "web", &svc, &svc_out).await.unwrap().is_none());
    assert!(e.refresh(HTTP_CHECK, "ready", &check, &check_out).await.unwrap().is_none());

    // Deleting what is already dead succeeds and cleans up after it.
    e.delete(SERVICE, "web", &svc, &svc_out).await.unwrap();
    assert!(!log_path.exists());
    e.delete(HTTP_CHECK, "ready", &check, &check_out).await.unwrap();
    e.delete(FILE, "page", &page, &page_out).await.unwrap();
    assert!(!e.root().exists(), "down leaves no trace");
}

#[tokio::test]
async fn service_restarts_on_update_and_stops_on_delete() {
    let e = env();
    let v1 = json!({"command": "exec sleep 30", "restart_on": {"config": "sha-1"}});
    let out1 = e.create(SERVICE, "svc", v1.clone()).await.unwrap();
    let v2 = json!({"command": "exec sleep 30", "restart_on": {"config": "sha-2"}});
    let out2 = e.update(SERVICE, "svc", (&v1, &out1), v2.clone(), &["restart_on"]).await.unwrap();
    assert_ne!(pid_of(&out1), pid_of(&out2));
    wait_dead(pid_of(&out1)).await;
    assert!(alive(pid_of(&out2)));
    assert_eq!(e.services("svc").await, vec![pid_of(&out2)]);
    // A SIGTERM-ignoring service is SIGKILLed after stop_timeout_secs.
    let stubborn = json!({"command": "trap '' TERM; while :; do sleep 0.05; done", "stop_timeout_secs": 1});
    let out3 = e.update(SERVICE, "svc", (&v2, &out2), stubborn.clone(), &["command", "stop_timeout_secs"]).await.unwrap();
    let started = Instant::now();
    e.delete(SERVICE, "svc", &stubborn, &out3).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900) && started.elapsed() < Duration::from_secs(5));
    assert!(!alive(pid_of(&out3)));
    assert!(e.services("svc").await.is_empty());
    assert!(!e.root().exists());
}

#[tokio::test]
async fn service_that_dies_at_once_fails_with_its_log() {
    let e = env();
    let err = e.create(SERVICE, "bad", json!({"command": "echo 'cannot bind port' >&2; exit 3"})).await.unwrap_err();
    assert!(err.message.contains("exited within 1000 ms"), "{}", err.message);
    assert!(err.message.contains("cannot bind port"), "{}", err.message);
    assert!(err.created.is_none());
    assert!(e.services("bad").await.is_empty(), "its supervisor is not left restarting it");
}

#[tokio::test]
async fn adopt_finds_an_unrecorded_service_once() {
    let e = env();
    let inputs = json!({"command": "exec sleep 30"});
    // A `phoenix up` started it and was killed before recording the pid.
    let lost = pid_of(&e.create(SERVICE, "svc", inputs.clone()).await.unwrap());
    let found = e.adopt(SERVICE, "svc", &inputs).await.unwrap().expect("adopted");
    assert_eq!(pid_of(&found.outputs), lost);
    assert_eq!(found.outputs["owner"], json!(e.ownership("svc").key()));
    // Adopting again starts nothing and finds the same one.
    let again = e.adopt(SERVICE, "svc", &inputs).await.unwrap().unwrap();
    assert_eq!(pid_of(&again.outputs), lost);
    assert_eq!(e.services("svc").await, vec![lost]);
    // Another resource's (or another lineage's) service is not adopted.
    assert!(e.adopt(SERVICE, "other", &inputs).await.unwrap().is_none());

    // Two interrupted runs left two: one is kept (the one the pid file names), the other stopped.
    let second = pid_of(&e.create(SERVICE, "svc", inputs.clone()).await.unwrap());
    assert_eq!(e.services("svc").await, vec![lost, second]);
    let kept = e.adopt(SERVICE, "svc", &inputs).await.unwrap().unwrap();
    assert_eq!(pid_of(&kept.outputs), second);
    wait_dead(lost).await;
    assert_eq!(e.services("svc").await, vec![second]);

    e.delete(SERVICE, "svc", &inputs, &kept.outputs).await.unwrap();
    assert!(e.services("svc").await.is_empty());
    assert!(!e.root().exists());
}

#[test]
fn service_survives_the_runtime_that_started_it() {
    let e = env();
    let inputs = json!({"command": "exec sleep 30"});
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(e.create(SERVICE, "bg", inputs.clone())).unwrap();
    drop(rt);
    let pid = pid_of(&out);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(pid), "the service died with the runtime that started it");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert!(e.refresh(SERVICE, "bg", &inputs, &out).await.unwrap().is_some());
        e.delete(SERVICE, "bg", &inputs, &out).await.unwrap();
    });
    reap(pid);
    assert!(!alive(pid));
}

// ---- metal.exec ----

#[tokio::test]
async fn exec_streams_lines_and_keeps_stdout() {
    let e = env();
    let (log, lines) = collecting();
    let inputs = json!({"command": "echo one; echo two >&2; echo \"$GREETING $PHOENIX_OWNER\"", "environment": {"GREETING": "hi"}});
    let out = e.create_with(EXEC, "hook", inputs, log).await.unwrap();
    let owner = e.ownership("hook").key();
    assert_eq!(out["exit_code"], json!(0));
    assert_eq!(out["stdout"], json!(format!("one\nhi {owner}")));
    let mut got = lines.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec![format!("hi {owner}"), "one".to_string(), "two".to_string()]);

    std::fs::create_dir_all(e.root().join("sub")).unwrap();
    let out = e.create(EXEC, "in-sub", json!({"command": "pwd", "workdir": "sub"})).await.unwrap();
    assert_eq!(out["stdout"], json!(e.root().join("sub").display().to_string()));
    let err = e.create(EXEC, "nowhere", json!({"command": "pwd", "workdir": "missing"})).await.unwrap_err();
    assert!(err.message.contains("does not exist"), "{}", err.message);
}

#[tokio::test]
async fn exec_lines_reach_the_sink_as_they_arrive() {
    let e = env();
    let seen_at = Arc::new(Mutex::new(Vec::new()));
    let s = seen_at.clone();
    let start = Instant::now();
    let log: LogSink = Arc::new(move |_: &ResourceAddr, line: &str| s.lock().unwrap().push((line.to_string(), start.elapsed())));
    e.create_with(EXEC, "slow", json!({"command": "echo first; sleep 0.5; echo second"}), log).await.unwrap();
    let seen = seen_at.lock().unwrap().clone();
    assert_eq!(seen.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["first", "second"]);
    assert!(seen[1].1 - seen[0].1 >= Duration::from_millis(400), "first line was not streamed: {seen:?}");
}

#[tokio::test]
async fn exec_failure_shows_the_stderr_tail() {
    let e = env();
    let cmd = "echo to-stdout; for i in $(seq 1 30); do echo err$i >&2; done; exit 3";
    let err = e.create(EXEC, "hook", json!({"command": cmd})).await.unwrap_err();
    let m = &err.message;
    assert!(m.contains("exit code 3"), "{m}");
    assert!(m.contains("err30") && m.contains("err11"), "{m}");
    assert!(!m.contains("err10"), "only the last 20 lines: {m}");
    assert_eq!(err.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn exec_timeout_kills_the_process_group() {
    let e = env();
    let started = Instant::now();
    let err = e
        .create(EXEC, "hang", json!({"command": "sleep 30 & echo $! > sleep.pid; echo waiting >&2; wait", "timeout_secs": 1}))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(err.message.contains("timed out after 1s"), "{}", err.message);
    assert!(err.message.contains("waiting"), "{}", err.message);
    let sleep_pid: u32 = std::fs::read_to_string(e.root().join("sleep.pid")).unwrap().trim().parse().unwrap();
    wait_dead(sleep_pid).await;
}

#[tokio::test]
async fn exec_update_and_destroy_commands() {
    let e = env();
    let marker = e.dir.path().join("destroyed.txt");
    let inputs = json!({
        "command": "echo created",
        "update_command": "echo updated",
        "destroy_command": format!("echo \"bye $SECRET\" > '{}'", marker.display()),
        "environment": {"SECRET": "s3cret"},
    });
    let out = e.create(EXEC, "hook", inputs.clone()).await.unwrap();
    assert_eq!(out["stdout"], json!("created"));
    let out2 = e.update(EXEC, "hook", (&inputs, &out), inputs.clone(), &["environment"]).await.unwrap();
    assert_eq!(out2["stdout"], json!("updated"));
    // Only the destroy command changed: nothing runs.
    let out3 = e.update(EXEC, "hook", (&inputs, &out2), inputs.clone(), &["destroy_command"]).await.unwrap();
    assert_eq!(out3, out2);

    // On delete, state holds `environment` sealed.
    let mut stored = attrs(inputs);
    stored.insert("environment".into(), seal(&stored["environment"], "lineage"));
    let (log, lines) = collecting();
    e.delete_with(EXEC, "hook", stored, &out3, log).await.unwrap();
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "bye \n");
    assert!(lines.lock().unwrap().iter().any(|l| l.contains("without it")));
    assert!(!e.root().exists(), "the root made for the command is pruned");
}

// ---- metal.http_check ----

#[tokio::test]
async fn http_check_timeout_names_the_last_failure() {
    let e = env();
    let port = http_server("503 Service Unavailable", "").await;
    let started = Instant::now();
    let err = e
        .create(HTTP_CHECK, "ready", json!({"url": format!("http://127.0.0.1:{port}/"), "timeout_secs": 1, "interval_ms": 100}))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(err.message.contains("did not return status 200 within 1s"), "{}", err.message);
    assert!(err.message.contains("status 503"), "{}", err.message);

    let port = http_server("200 OK", "nope").await;
    let err = e
        .create(HTTP_CHECK, "ready", json!({"url": format!("http://127.0.0.1:{port}/"), "contains": "ok!", "timeout_secs": 1}))
        .await
        .unwrap_err();
    assert!(err.message.contains("does not contain `ok!`"), "{}", err.message);

    let closed = free_port();
    let err = e.create(HTTP_CHECK, "ready", json!({"url": format!("http://127.0.0.1:{closed}/"), "timeout_secs": 1})).await.unwrap_err();
    assert!(err.message.to_lowercase().contains("refused"), "{}", err.message);

    let port = http_server("418 I'm a teapot", "short and stout").await;
    let ok = e
        .create(HTTP_CHECK, "ready", json!({"url": format!("http://127.0.0.1:{port}/"), "expect_status": 418, "contains": "stout"}))
        .await
        .unwrap();
    assert_eq!(ok["status"], json!(418));
}
