//! The bad-input corpus (`tests/bad-input/`): every broken environment is
//! refused before any side effect, with the exact kind and location.

mod support;

use std::path::Path;

use support::{Project, phoenix};

#[derive(serde::Deserialize)]
struct Expect {
    kind: String,
    file: String,
    line: usize,
    message: Option<String>,
    /// A fragment of the help line (a did-you-mean).
    help: Option<String>,
    #[serde(default)]
    args: Vec<String>,
}

fn cases() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bad-input");
    let mut dirs: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

#[test]
fn corpus_has_at_least_eighty_cases() {
    assert!(cases().len() >= 80, "only {} cases", cases().len());
}

#[test]
fn every_broken_environment_is_refused_with_its_kind_and_location() {
    let mut failures = Vec::new();
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let expect: Expect = toml::from_str(&std::fs::read_to_string(case.join("expect.toml")).unwrap()).unwrap();
        let project = Project::copy_of(&case);
        let mut args = vec!["--json", "validate", "bad"];
        args.extend(expect.args.iter().map(String::as_str));
        let out = phoenix(&project.dir, &args);
        if out.code != 3 {
            failures.push(format!("{name}: validate exited {} (want 3)\n{}{}", out.code, out.stdout, out.stderr));
            continue;
        }
        let doc: serde_json::Value = match serde_json::from_str(out.stdout.trim()) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{name}: output is not one JSON document ({e}): {}", out.stdout));
                continue;
            }
        };
        let diags = doc["diagnostics"].as_array().cloned().unwrap_or_default();
        let found = diags.iter().any(|d| {
            d["kind"] == expect.kind.as_str()
                && d["location"]["file"] == expect.file.as_str()
                && d["location"]["line"] == expect.line
                && expect.message.as_ref().is_none_or(|m| d["message"].as_str().unwrap_or("").contains(m.as_str()))
                && expect.help.as_ref().is_none_or(|h| d["help"].as_str().unwrap_or("").contains(h.as_str()))
        });
        if !found {
            failures.push(format!(
                "{name}: expected {} at {}:{}{}; got {}",
                expect.kind,
                expect.file,
                expect.line,
                expect.message.as_ref().map(|m| format!(" mentioning `{m}`")).unwrap_or_default()
                    + &expect.help.as_ref().map(|h| format!(" with help `{h}`")).unwrap_or_default(),
                serde_json::to_string_pretty(&diags).unwrap()
            ));
        }
        // `up` refuses the same way and nothing is created: no state, no work directory.
        let mut up = vec!["--json", "up", "bad", "--yes"];
        up.extend(expect.args.iter().map(String::as_str));
        let out = phoenix(&project.dir, &up);
        if out.code != 3 {
            failures.push(format!("{name}: up exited {} (want 3)", out.code));
        }
        if project.dir.join(".phoenix").exists() {
            failures.push(format!("{name}: up created .phoenix/ for an invalid definition"));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn human_output_shows_file_line_and_snippet() {
    let case = cases().into_iter().find(|c| c.ends_with("unknown-attribute")).unwrap();
    let project = Project::copy_of(&case);
    let out = phoenix(&project.dir, &["--no-color", "validate", "bad"]);
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("templates/bad.toml.j2:4"), "{}", out.stderr);
    assert!(out.stderr.contains("contnt = \"hello\""), "snippet missing: {}", out.stderr);
    assert!(out.stderr.contains("did you mean `content`?"), "{}", out.stderr);
}

/// Every broken environment is refused before any provider is called: with
/// AWS and GCP pointed at a loopback port this test holds, `up --yes` of every
/// case leaves that port without a single connection.
#[test]
fn no_request_reaches_the_cloud_for_any_broken_environment() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    for case in cases() {
        let expect: Expect = toml::from_str(&std::fs::read_to_string(case.join("expect.toml")).unwrap()).unwrap();
        let project = Project::copy_of(&case);
        let mut args = vec!["--json", "up", "bad", "--yes"];
        args.extend(expect.args.iter().map(String::as_str));
        let out = support::command(&project.dir, &args)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", &endpoint)
            .env("GOOGLE_CLOUD_PROJECT", "phoenix-test")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{}: {}", case.display(), String::from_utf8_lossy(&out.stdout));
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{}: a provider connected to the endpoint: {other:?}", case.display()),
        }
    }
    // The control: a valid definition under the same settings does reach the port.
    let valid = Project::empty();
    valid.write("environments/ok.toml", "template = \"ok\"\n");
    valid.write("templates/ok.toml.j2", "[resource.vpc]\ntype = \"aws.vpc\"\ncidr_block = \"10.0.0.0/16\"\n");
    let mut child = support::command(&valid.dir, &["up", "ok", "--yes"])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let connected = support::wait_until(60, || listener.accept().is_ok());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(connected, "the control never reached the endpoint: the test could not have seen a leak");
}
