use std::path::PathBuf;

use serde_json::json;

use super::*;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.schema.json")
}

/// `docs/events.schema.json` is what the types generate now. Regenerate with
/// `PHOENIX_BLESS=1 cargo test -p phoenix-engine` and commit it.
#[test]
fn committed_schema_is_what_the_types_generate() {
    let generated = json_schema();
    let path = committed_path();
    if std::env::var_os("PHOENIX_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/events.schema.json is out of date with phoenix_engine::event; regenerate it with\n  PHOENIX_BLESS=1 cargo test -p phoenix-engine\nand commit it (a changed or removed field also bumps SCHEMA_VERSION)"
    );
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn a_line_carries_type_version_and_time_and_validates() {
    let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z").unwrap().with_timezone(&Utc);
    let ev = Event::OperationFailed {
        addr: "db".into(),
        action: Verb::Create,
        error: "CreateDBInstance: Throttling".into(),
        error_kind: ErrorKind::RateLimited,
        elapsed_ms: 7,
    };
    let line = ev.to_line_at(at);
    assert!(line.starts_with(r#"{"type":"operation_failed","#), "{line}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        v,
        json!({"type": "operation_failed", "addr": "db", "action": "create", "error": "CreateDBInstance: Throttling",
            "error_kind": "rate_limited", "elapsed_ms": 7, "schema_version": SCHEMA_VERSION, "ts": "2026-01-02T03:04:05.678Z"})
    );
    assert!(validator().is_valid(&v));
    assert_eq!(ev.kind(), "operation_failed");
}

#[test]
fn the_schema_refuses_lines_that_break_the_contract() {
    let v = validator();
    let good: serde_json::Value = serde_json::from_str(&Event::Interrupted { in_flight: 2 }.to_line()).unwrap();
    assert!(v.is_valid(&good));
    for broken in [
        json!({"event": "interrupted", "in_flight": 2, "schema_version": 1, "ts": "2026-01-02T03:04:05.678Z"}),
        json!({"type": "interrupted", "in_flight": 2, "ts": "2026-01-02T03:04:05.678Z"}),
        json!({"type": "interrupted", "in_flight": 2, "schema_version": 1}),
        json!({"type": "interrupted", "in_flight": "two", "schema_version": 1, "ts": "2026-01-02T03:04:05.678Z"}),
        json!({"type": "no_such_event", "schema_version": 1, "ts": "2026-01-02T03:04:05.678Z"}),
        json!({"type": "operation_started", "addr": "a", "action": "destroy", "resource_type": "t", "schema_version": 1, "ts": "x"}),
    ] {
        assert!(!v.is_valid(&broken), "accepted: {broken}");
    }
}

#[test]
fn executor_events_use_the_one_verb_set() {
    use phoenix_core::ResourceAddr;
    let addr = ResourceAddr::new_unchecked("web");
    let ev = Event::from(&ApplyEvent::Started { addr: addr.clone(), op: OpKind::Destroy, type_name: "aws.instance".into() });
    assert_eq!(ev, Event::OperationStarted { addr: "web".into(), action: Verb::Delete, resource_type: "aws.instance".into() });
    let ev = Event::from(&ApplyEvent::Finished { addr, op: OpKind::Adopt, elapsed_ms: 1, id: None });
    assert!(ev.to_line().contains(r#""action":"adopt""#));
}
