//! A damaged state file is detected through its checksum, reported with the
//! newest intact version from history, and never overwritten by a run.

mod support;

use support::{Project, phoenix};

fn project() -> Project {
    let project = Project::empty();
    project.write("environments/notes.toml", "template = \"notes\"\n\n[vars]\ncount = 3\n");
    project.write(
        "templates/notes.toml.j2",
        "{% for i in range(count) %}\n[resource.note-{{ i }}]\ntype = \"data\"\ninput = \"note {{ i }}\"\n{% endfor %}\n",
    );
    project
}

fn damage_and_check(damage: impl Fn(&[u8]) -> Vec<u8>, says: &str) {
    let project = project();
    for count in ["count=3", "count=4", "count=5"] {
        let up = phoenix(&project.dir, &["up", "notes", "--yes", "--var", count]);
        assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    }
    let state = project.dir.join(".phoenix/state/notes/state.json");
    let good = std::fs::read(&state).unwrap();
    std::fs::write(&state, damage(&good)).unwrap();
    let damaged = std::fs::read(&state).unwrap();

    for args in [
        &["status", "notes"][..],
        &["plan", "notes"][..],
        &["up", "notes", "--yes", "--var", "count=6"][..],
        &["down", "notes", "--yes"][..],
    ] {
        let o = phoenix(&project.dir, args);
        assert_eq!(o.code, 1, "{args:?}: {}\n{}", o.stdout, o.stderr);
        assert!(o.stderr.contains("is corrupt") && o.stderr.contains(says), "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains("history/state."), "the previous version is offered: {}", o.stderr);
        assert_eq!(std::fs::read(&state).unwrap(), damaged, "{args:?} rewrote the damaged state");
    }
}

#[test]
fn a_truncated_state_file_is_reported_with_the_previous_version_and_kept() {
    damage_and_check(|b| b[..b.len() / 2].to_vec(), "");
}

#[test]
fn a_flipped_byte_fails_the_checksum_and_is_kept() {
    damage_and_check(
        |b| {
            let text = String::from_utf8(b.to_vec()).unwrap();
            text.replacen("note 1", "note 7", 1).into_bytes()
        },
        "checksum",
    );
}
