use std::collections::BTreeMap;

use phoenix_core::ResourceAddr;
use phoenix_core::plan::{Action, AttrChange, Plan, PlannedChange, PlannedOutput};
use phoenix_core::value::{Value, seal};
use serde_json::json;

use super::render;

fn plan(changes: Vec<PlannedChange>) -> Plan {
    // Every expectation below is plain text.
    console::set_colors_enabled(false);
    Plan {
        environment: "staging".into(),
        instance: None,
        lineage: "lineage-1".into(),
        expires_at: None,
        state_serial: 3,
        destroy: false,
        changes,
        outputs: BTreeMap::new(),
        stale_intents: Vec::new(),
        gone: Vec::new(),
        prior_outputs: BTreeMap::new(),
    }
}

fn change(addr: &str, type_name: &str, action: Action, attrs: Vec<AttrChange>) -> PlannedChange {
    PlannedChange {
        addr: ResourceAddr::parse(addr).unwrap(),
        type_name: type_name.into(),
        action,
        reasons: Vec::new(),
        changes: attrs,
        desired: None,
        prior: None,
        depends_on: Vec::new(),
        create_before_destroy: false,
        deposed: false,
        adopt: false,
        sensitive: Vec::new(),
        loses_data: false,
    }
}

fn attr(name: &str, before: Option<Value>, after: Option<Value>) -> AttrChange {
    AttrChange { name: name.into(), before, after, forces_replacement: false, sensitive: false }
}

/// The lines of one resource's block, without the plan's header and summary.
fn body(text: &str) -> String {
    let start = text.find("\n\n").map(|i| i + 2).unwrap_or(0);
    let end = text.find("Plan:").unwrap_or(text.len());
    text[start..end].trim_end().to_string()
}

#[test]
fn a_multi_line_string_is_a_line_diff_with_context() {
    let before = "<!doctype html>\n<title>Hello</title>\n<h1>Hello</h1>\n<p>one</p>\n<p>two</p>\n<p>three</p>\n<p>four</p>\n<p>five</p>\n";
    let after = "<!doctype html>\n<title>Risen again</title>\n<h1>Risen again</h1>\n<p>one</p>\n<p>two</p>\n<p>three</p>\n<p>four</p>\n<p>five</p>\n";
    let p = plan(vec![change(
        "index",
        "metal.file",
        Action::Update,
        vec![attr("content", Some(json!(before)), Some(json!(after))), attr("path", Some(json!("a")), Some(json!("b")))],
    )]);
    assert_eq!(
        body(&render(&p, false)),
        r#"  ~ index (metal.file) will be updated in place
      ~ content = <<-EOT
            <!doctype html>
          - <title>Hello</title>
          - <h1>Hello</h1>
          + <title>Risen again</title>
          + <h1>Risen again</h1>
            <p>one</p>
            <p>two</p>
            <p>three</p>
            # (2 unchanged lines hidden)
        EOT
      ~ path    = "a" -> "b""#
    );
    // Nothing is shortened, however long.
    let long = "x".repeat(500);
    let p = plan(vec![change("f", "metal.file", Action::Update, vec![attr("path", Some(json!("a")), Some(json!(long)))])]);
    assert!(render(&p, false).contains(&long));
    // --compact keeps one line per attribute and shortens.
    let compact = render(&p, true);
    assert!(!compact.contains(&long), "{compact}");
    assert!(compact.contains("… (502 chars)"), "{compact}");
}

#[test]
fn a_rules_list_with_one_rule_changed_marks_only_that_rule() {
    let rule = |port: i64, cidr: &str| json!({"protocol": "tcp", "from_port": port, "to_port": port, "cidr_blocks": [cidr]});
    let before = json!([rule(22, "10.0.0.0/8"), rule(80, "0.0.0.0/0"), rule(443, "0.0.0.0/0")]);
    let after = json!([rule(22, "10.0.0.0/8"), rule(8080, "0.0.0.0/0"), rule(443, "0.0.0.0/0")]);
    let p = plan(vec![change("web-sg", "aws.security_group", Action::Update, vec![attr("ingress", Some(before), Some(after))])]);
    assert_eq!(
        body(&render(&p, false)),
        r#"  ~ web-sg (aws.security_group) will be updated in place
      ~ ingress = [
            # (1 unchanged element hidden)
          ~ {
                cidr_blocks = [
                    "0.0.0.0/0",
                ]
              ~ from_port   = 80 -> 8080
                protocol    = "tcp"
              ~ to_port     = 80 -> 8080
            },
            # (1 unchanged element hidden)
        ]"#
    );
    // A rule added and one removed.
    let before = json!([rule(22, "10.0.0.0/8")]);
    let after = json!([rule(22, "10.0.0.0/8"), {"protocol": "icmp", "cidr_blocks": []}]);
    let p = plan(vec![change("web-sg", "aws.security_group", Action::Update, vec![attr("egress", Some(before), Some(after))])]);
    assert_eq!(
        body(&render(&p, false)),
        r#"  ~ web-sg (aws.security_group) will be updated in place
      ~ egress = [
            # (1 unchanged element hidden)
          + {
              + cidr_blocks = []
              + protocol    = "icmp"
            },
        ]"#
    );
}

#[test]
fn a_tags_map_with_one_key_changed_hides_the_others() {
    let before = json!({"Name": "web", "env": "staging", "team": "a", "cost center": "42"});
    let after = json!({"Name": "web", "env": "prod", "team": "a", "cost center": "42", "new": true});
    let p = plan(vec![change("vpc", "aws.vpc", Action::Update, vec![attr("tags", Some(before), Some(after))])]);
    assert_eq!(
        body(&render(&p, false)),
        r#"  ~ vpc (aws.vpc) will be updated in place
      ~ tags = {
          ~ env = "staging" -> "prod"
          + new = true
            # (3 unchanged elements hidden)
        }"#
    );
    // A created resource shows its whole table.
    let p =
        plan(vec![change("vpc", "aws.vpc", Action::Create, vec![attr("tags", None, Some(json!({"Name": "web", "cost center": "42"})))])]);
    assert_eq!(
        body(&render(&p, false)),
        r#"  + vpc (aws.vpc) will be created
      + tags = {
          + Name          = "web"
          + "cost center" = "42"
        }"#
    );
}

#[test]
fn sensitive_values_stay_hidden_inside_blocks_and_diffs() {
    let sealed = seal(&json!("hunter2"), "lineage-1");
    let other = seal(&json!("hunter3"), "lineage-1");
    let mut sensitive_attr = attr("user_data", Some(json!("#!/bin/sh\necho hunter2\n")), Some(json!("#!/bin/sh\necho hunter3\n")));
    sensitive_attr.sensitive = true;
    let mut sensitive_map = attr("credentials", Some(json!({"password": "hunter2"})), Some(json!({"password": "hunter3"})));
    sensitive_map.sensitive = true;
    let p = plan(vec![change(
        "db",
        "aws.db_instance",
        Action::Update,
        vec![
            attr("env", Some(json!({"PASSWORD": sealed, "USER": "app"})), Some(json!({"PASSWORD": other, "USER": "admin"}))),
            attr("list", Some(json!(["a", sealed])), Some(json!(["a", other, "b"]))),
            sensitive_attr,
            sensitive_map,
        ],
    )]);
    let text = render(&p, false);
    assert!(!text.contains("hunter"), "{text}");
    assert!(!text.contains("sha256"), "{text}");
    assert_eq!(
        body(&text),
        r#"  ~ db (aws.db_instance) will be updated in place
      ~ env         = {
          ~ PASSWORD = (sensitive)
          ~ USER     = "app" -> "admin"
        }
      ~ list        = [
            # (1 unchanged element hidden)
          ~ (sensitive),
          + "b",
        ]
      ~ user_data   = (sensitive)
      ~ credentials = (sensitive)"#
    );
    // --compact too.
    let text = render(&p, true);
    assert!(!text.contains("hunter") && !text.contains("sha256"), "{text}");
}

#[test]
fn output_changes_are_listed_against_state() {
    let mut p = plan(vec![change("site", "data", Action::Update, vec![attr("input", Some(json!("a")), Some(json!("b")))])]);
    p.prior_outputs.insert("url".into(), json!("http://a/"));
    p.prior_outputs.insert("same".into(), json!(1));
    p.prior_outputs.insert("old".into(), json!("x"));
    p.prior_outputs.insert("token".into(), seal(&json!("t0k3n"), "lineage-1"));
    p.outputs.insert("url".into(), PlannedOutput { value: json!("http://b/"), sensitive: false });
    p.outputs.insert("same".into(), PlannedOutput { value: json!(1), sensitive: false });
    p.outputs.insert("pid".into(), PlannedOutput { value: json!("${web.pid}"), sensitive: false });
    p.outputs.insert("token".into(), PlannedOutput { value: json!("n3w-t0k3n"), sensitive: true });
    let text = render(&p, false);
    let outputs = &text[text.find("Changes to outputs:").expect(&text)..];
    assert_eq!(
        outputs.trim_end(),
        r#"Changes to outputs:
  - old   = "x"
  + pid   = "${web.pid}" (known after apply)
  ~ token = (sensitive)
  ~ url   = "http://a/" -> "http://b/""#
    );
    assert!(!text.contains("t0k3n"), "{text}");
}

#[test]
fn objects_holding_data_are_named_in_a_warning() {
    let mut disk = change("data-0", "aws.volume", Action::Delete, Vec::new());
    disk.loses_data = true;
    disk.reasons = vec!["no longer declared".into()];
    let mut db = change("db", "aws.db_instance", Action::Replace, Vec::new());
    db.loses_data = true;
    let mut p = plan(vec![db, disk, change("vpc", "aws.vpc", Action::Delete, Vec::new())]);
    p.instance = Some("drill-1".into());
    let text = render(&p, false);
    let warning = &text[text.find('╷').expect(&text)..];
    assert_eq!(
        warning.trim_end(),
        r#"╷
│ Warning: 2 objects that hold data will be destroyed or replaced
│
│   - db (aws.db_instance) will be replaced
│   - data-0 (aws.volume) will be destroyed (no longer declared)
│
│ Their contents go with them: Phoenix cannot make them again from the
│ definition. Take a recovery point first if you may need them:
│   phoenix snapshot staging --instance drill-1
╵"#
    );
    // Nothing holding data, no warning.
    let p = plan(vec![change("vpc", "aws.vpc", Action::Delete, Vec::new())]);
    assert!(!render(&p, false).contains("Warning"));
}
