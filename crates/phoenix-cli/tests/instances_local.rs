//! Instances, TTLs, gc of expired instances and outputs files on the local
//! state backend (no emulator: `data` resources only), and the unique-name
//! check that keeps concurrent instances from colliding.

mod support;

use support::{Project, phoenix};

fn project() -> Project {
    let p = Project::empty();
    p.write("environments/ci.toml", "template = \"ci\"\n");
    p.write(
        "templates/ci.toml.j2",
        r#"[resource.net]
type = "data"
input = "net of {{ instance }}"

[resource.app]
type = "data"
input = "${net.output}"
secret = "s3cret-value"

[output.net]
value = "${net.output}"

[output.token]
value = "${app.secret}"
sensitive = true
"#,
    );
    p
}

#[test]
fn instances_lists_age_expiry_and_resources_and_gc_destroys_only_what_expired() {
    let p = project();
    for args in [
        vec!["up", "ci", "--instance", "short", "--ttl", "1s", "--yes"],
        vec!["up", "ci", "--instance", "long", "--ttl", "2h", "--yes", "--outputs-file", "long.json"],
        vec!["up", "ci", "--instance", "forever", "--yes"],
    ] {
        let out = phoenix(&p.dir, &args);
        assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    }
    // The outputs file is under -C DIR, private, and without the sensitive output.
    let path = p.dir.join("long.json");
    let outputs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(outputs, serde_json::json!({"net": "net of long"}));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let dotenv = phoenix(&p.dir, &["output", "ci", "--instance", "long", "--format", "dotenv"]);
    assert_eq!(dotenv.stdout, "NET='net of long'\n", "{}", dotenv.stderr);
    assert!(dotenv.stderr.contains("token"), "the left-out sensitive output is named: {}", dotenv.stderr);

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let listed = phoenix(&p.dir, &["instances", "ci", "--json"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let doc: serde_json::Value = serde_json::from_str(listed.stdout.trim()).unwrap();
    let rows: Vec<(String, u64, bool, bool)> = doc["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["instance"].as_str().unwrap().to_string(),
                i["resources"].as_u64().unwrap(),
                i["expires_at"].is_string(),
                i["expired"] == true,
            )
        })
        .collect();
    assert_eq!(rows, vec![("forever".into(), 2, false, false), ("long".into(), 2, true, false), ("short".into(), 2, true, true)]);
    assert!(doc["instances"].as_array().unwrap().iter().all(|i| i["age_secs"].as_i64().is_some()));
    let table = phoenix(&p.dir, &["instances", "ci"]);
    assert!(table.stdout.contains("INSTANCE") && table.stdout.contains("expired") && table.stdout.contains("never"), "{}", table.stdout);

    let dry = phoenix(&p.dir, &["gc", "ci", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    assert!(dry.stdout.contains("would destroy ci --instance short"), "{}", dry.stdout);
    let gc = phoenix(&p.dir, &["gc", "ci", "--yes"]);
    assert_eq!(gc.code, 0, "{}{}", gc.stdout, gc.stderr);
    let after = phoenix(&p.dir, &["instances", "ci", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(after.stdout.trim()).unwrap();
    let counts: Vec<(String, u64)> = doc["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["instance"].as_str().unwrap().to_string(), i["resources"].as_u64().unwrap()))
        .collect();
    // The expired instance is destroyed and, like any complete `down`, leaves no state behind.
    assert_eq!(counts, vec![("forever".into(), 2), ("long".into(), 2)]);
    assert!(!p.dir.join(".phoenix/state/ci.short").exists());
    // gc without --yes and without a terminal refuses.
    let refused = phoenix(&p.dir, &["gc", "ci"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
}

#[test]
fn a_name_that_is_the_same_in_every_instance_is_refused_with_its_location() {
    let p = Project::empty();
    p.write("environments/keys.toml", "template = \"keys\"\n");
    p.write(
        "templates/keys.toml.j2",
        "[resource.key]\ntype = \"aws.key_pair\"\nkey_name = \"deploy\"\npublic_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOcNOEV3pBNwDnYoI/as3v1YXESI16vpWgSSf4Q6RaKX x\"\n",
    );
    // Without an instance there is one copy: fine.
    assert_eq!(phoenix(&p.dir, &["validate", "keys"]).code, 0);
    let out = phoenix(&p.dir, &["validate", "keys", "--instance", "pr-7"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("key_name") && out.stderr.contains("collide") && out.stderr.contains("keys.toml.j2"), "{}", out.stderr);
    p.write(
        "templates/keys.toml.j2",
        "[resource.key]\ntype = \"aws.key_pair\"\nkey_name = \"deploy-{{ instance }}\"\npublic_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOcNOEV3pBNwDnYoI/as3v1YXESI16vpWgSSf4Q6RaKX x\"\n",
    );
    assert_eq!(phoenix(&p.dir, &["validate", "keys", "--instance", "pr-7"]).code, 0);
}
