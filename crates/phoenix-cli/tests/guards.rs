//! Destructive commands guarded, through the binary: an empty definition
//! against a live state, `snapshot delete` without a terminal, a snapshot of a
//! definition the environment does not have, and `down` leaving no state behind.

mod support;

use support::{Project, phoenix};

/// `data` resources behind a switch: `full = false` renders nothing.
fn project() -> Project {
    let p = Project::empty();
    p.write("environments/app.toml", "template = \"app\"\n\n[vars]\nlabel = \"v1\"\nfull = true\n");
    p.write(
        "templates/app.toml.j2",
        "{% if full %}\n[resource.base]\ntype = \"data\"\ninput = \"{{ label }}\"\n\n[resource.other]\ntype = \"data\"\ninput = \"${base.output}\"\n{% endif %}\n",
    );
    p
}

fn resources(p: &Project) -> usize {
    phoenix(&p.dir, &["state", "list", "app"]).stdout.lines().count()
}

fn points(p: &Project) -> usize {
    phoenix(&p.dir, &["snapshot", "list", "app"]).stdout.lines().filter(|l| l.starts_with("rp-")).count()
}

#[test]
fn an_empty_definition_does_not_destroy_a_live_environment_without_allow_empty() {
    let p = project();
    // Nothing in state: an empty definition is just empty.
    assert_eq!(phoenix(&p.dir, &["plan", "app", "--var", "full=false"]).code, 0);
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes"]).code, 0);
    for args in [&["plan", "app", "--var", "full=false"][..], &["up", "app", "--var", "full=false", "--yes"][..]] {
        let out = phoenix(&p.dir, args);
        assert_eq!(out.code, 3, "{args:?}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("renders no resources") && out.stderr.contains("--allow-empty"), "{}", out.stderr);
    }
    assert_eq!(resources(&p), 2, "nothing was destroyed");
    let out = phoenix(&p.dir, &["up", "app", "--var", "full=false", "--allow-empty", "--yes"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(resources(&p), 0);
}

#[test]
fn down_removes_the_local_state_unless_history_is_kept() {
    let p = project();
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes"]).code, 0);
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes", "--var", "label=v2"]).code, 0);
    let out = phoenix(&p.dir, &["down", "app", "--yes", "--keep-history"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(p.dir.join(".phoenix/state/app/history").is_dir(), "--keep-history keeps the state's history");
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes"]).code, 0);
    let out = phoenix(&p.dir, &["destroy", "app", "--yes"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !p.dir.join(".phoenix").exists(),
        "down leaves no trace: {:?}",
        std::fs::read_dir(p.dir.join(".phoenix/state")).map(|d| d.count())
    );
    // A down of nothing leaves nothing either.
    assert_eq!(phoenix(&p.dir, &["down", "app", "--yes"]).code, 0);
    assert!(!p.dir.join(".phoenix").exists());
}

#[test]
fn down_keeps_recovery_points() {
    let p = project();
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes"]).code, 0);
    assert_eq!(phoenix(&p.dir, &["snapshot", "app"]).code, 0);
    assert_eq!(phoenix(&p.dir, &["down", "app", "--yes"]).code, 0);
    assert!(!p.dir.join(".phoenix/state/app").exists());
    assert_eq!(points(&p), 1, "recovery points outlive the environment");
}

#[test]
fn snapshot_delete_asks_and_refuses_without_a_terminal() {
    let p = project();
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes"]).code, 0);
    assert_eq!(phoenix(&p.dir, &["snapshot", "app"]).code, 0);
    let list = phoenix(&p.dir, &["snapshot", "list", "app"]).stdout;
    let id = list.lines().find(|l| l.starts_with("rp-")).unwrap().split_whitespace().next().unwrap().to_string();
    let out = phoenix(&p.dir, &["snapshot", "delete", "app", &id]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("refusing to delete recovery point") && out.stderr.contains("--yes"), "{}", out.stderr);
    assert_eq!(points(&p), 1, "nothing was deleted");
    let out = phoenix(&p.dir, &["snapshot", "delete", "app", &id, "--yes"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(points(&p), 0);
}

#[test]
fn a_snapshot_of_another_definition_warns_and_strict_refuses() {
    let p = project();
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes"]).code, 0);
    let same = phoenix(&p.dir, &["snapshot", "app"]);
    assert_eq!(same.code, 0);
    assert!(!same.stderr.contains("differs"), "{}", same.stderr);
    let strict = phoenix(&p.dir, &["snapshot", "app", "--var", "label=v2", "--strict"]);
    assert_eq!(strict.code, 1);
    assert!(strict.stderr.contains("base would be updated") && strict.stderr.contains("nothing was taken"), "{}", strict.stderr);
    assert_eq!(points(&p), 1);
    let warned = phoenix(&p.dir, &["snapshot", "app", "--var", "label=v2"]);
    assert_eq!(warned.code, 0);
    assert!(
        warned.stderr.contains("differs from what state holds") && warned.stderr.contains("base would be updated"),
        "{}",
        warned.stderr
    );
    assert_eq!(points(&p), 2);
}

/// An AWS environment, and the process environment of a machine with no AWS credentials.
fn aws_without_credentials() -> (Project, Vec<(&'static str, String)>) {
    let p = Project::empty();
    p.write("environments/net.toml", "template = \"net\"\n\n[providers.aws]\nregion = \"eu-west-1\"\n");
    p.write("templates/net.toml.j2", "[resource.vpc]\ntype = \"aws.vpc\"\ncidr_block = \"10.0.0.0/16\"\n");
    let nowhere = p.dir.join("no-such-file").display().to_string();
    let env = vec![
        ("HOME", p.dir.display().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", nowhere.clone()),
        ("AWS_CONFIG_FILE", nowhere),
    ];
    (p, env)
}

fn run_with(p: &Project, args: &[&str], env: &[(&str, String)], unset: &[&str]) -> support::Output {
    let mut c = support::command(&p.dir, args);
    for (k, v) in env {
        c.env(k, v);
    }
    for k in unset {
        c.env_remove(k);
    }
    let out = c.output().unwrap();
    support::Output::of(args, out)
}

#[test]
fn missing_credentials_fail_once_before_any_lock_or_file() {
    let (p, env) = aws_without_credentials();
    let unset = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"];
    for args in [&["plan", "net"][..], &["up", "net", "--yes"][..], &["down", "net", "--yes"][..]] {
        let out = run_with(&p, args, &env, &unset);
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        assert_eq!(out.stderr.matches("no AWS credentials").count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains("AWS_PROFILE") && out.stderr.contains("nothing was locked"), "{}", out.stderr);
        assert!(!p.dir.join(".phoenix").exists(), "{args:?} locked or wrote something");
    }
}

#[test]
fn preflight_names_the_account_the_region_and_the_endpoint() {
    let (p, mut env) = aws_without_credentials();
    let moto = phoenix_testkit::Moto::start();
    env.extend([
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_ENDPOINT_URL", moto.endpoint()),
    ]);
    let out = run_with(&p, &["plan", "net"], &env, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = format!("aws: account 123456789012 in eu-west-1 via AWS_ENDPOINT_URL={}", moto.endpoint());
    assert!(out.stderr.contains(&line), "{}", out.stderr);
}

/// Keys the cloud refuses, and an endpoint where nothing answers: `plan`,
/// `up` and `down` fail in the preflight, once, with the fix, before any lock.
#[test]
fn refused_or_unreachable_aws_fails_in_the_preflight_before_any_lock() {
    let moto = phoenix_testkit::Moto::start_enforcing_auth();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let cases = [(moto.endpoint(), "AWS refused the credentials", "aws configure"), (closed, "cannot confirm the AWS credentials", "")];
    for (endpoint, says, fix) in cases {
        let (p, mut env) = aws_without_credentials();
        env.extend([
            ("AWS_ACCESS_KEY_ID", "AKIDNEVERISSUED".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "not-a-secret".to_string()),
            ("AWS_ENDPOINT_URL", endpoint.clone()),
        ]);
        for args in [&["plan", "net"][..], &["up", "net", "--yes"][..], &["down", "net", "--yes"][..]] {
            let out = run_with(&p, args, &env, &[]);
            assert_eq!(out.code, 1, "{endpoint} {args:?}: {}\n{}", out.stdout, out.stderr);
            assert_eq!(out.stderr.matches(says).count(), 1, "{}", out.stderr);
            assert!(out.stderr.contains(fix) && out.stderr.contains("nothing was locked"), "{}", out.stderr);
            assert!(!p.dir.join(".phoenix").exists(), "{args:?} locked or wrote something");
        }
    }
}

/// No Google credentials anywhere (no key file variable, no gcloud login, not
/// on GCE) and no emulator endpoint: the preflight says so once, with the fix.
#[test]
fn missing_google_credentials_fail_in_the_preflight_with_the_fix() {
    if std::fs::read_to_string("/sys/class/dmi/id/product_name").is_ok_and(|p| p.contains("Google")) {
        eprintln!("skipped: on GCE the metadata server is a real source of credentials");
        return;
    }
    let p = Project::empty();
    p.write("environments/net.toml", "template = \"net\"\n\n[providers.gcp]\nproject = \"p\"\nregion = \"us-central1\"\n");
    p.write("templates/net.toml.j2", "[resource.net]\ntype = \"gcp.network\"\nname = \"net\"\n");
    let env = vec![("HOME", p.dir.display().to_string())];
    let unset = ["GOOGLE_APPLICATION_CREDENTIALS", "GCE_METADATA_HOST", "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"];
    for args in [&["plan", "net"][..], &["up", "net", "--yes"][..], &["down", "net", "--yes"][..]] {
        let out = run_with(&p, args, &env, &unset);
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        assert_eq!(out.stderr.matches("no Google credentials").count(), 1, "{}", out.stderr);
        assert!(
            out.stderr.contains("gcloud auth application-default login") && out.stderr.contains("GOOGLE_APPLICATION_CREDENTIALS"),
            "{}",
            out.stderr
        );
        assert!(!p.dir.join(".phoenix").exists(), "{args:?} locked or wrote something");
    }
}
