//! The POSIX `sh` scripts the SSH transport runs on a host, built as plain
//! strings so they are unit-tested without a host. Only POSIX sh, coreutils
//! (`stat -c`, `mktemp`, `tail -c`, `setsid`) and `/proc` are assumed: what
//! any Linux machine Phoenix manages has.

use std::path::Path;

use crate::transport::OwnerMark;

/// Starts a stderr line that carries the transport's own bookkeeping, never shown.
pub const MARKER: char = '\u{1e}';
/// The exit code of a script whose working directory is missing.
pub const NO_WORKDIR_EXIT: u32 = 97;

/// `s` as one single-quoted shell word.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn qpath(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

fn exports(env: &[(String, String)]) -> String {
    env.iter().map(|(k, v)| format!("export {k}={}\n", quote(v))).collect()
}

/// Whether a name can be exported by `sh` (anything else is refused before it reaches a host).
pub fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic()) && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// A command run to completion. Fed to `exec sh -s` on stdin, so that
/// environment values (which may be secrets) never appear on a command line
/// that `ps` on the host would show. The first stderr line reports the
/// process group (the login shell was replaced by `sh -s`, a session
/// leader), so a timed-out or orphaned command can be killed as a whole.
pub fn exec_script(command: &str, workdir: &Path, env: &[(String, String)]) -> String {
    format!(
        "printf '{MARKER}PGID %s\\n' \"$$\" >&2\n\
         [ -d {wd} ] || {{ printf '{MARKER}NOWORKDIR\\n' >&2; exit {NO_WORKDIR_EXIT}; }}\n\
         cd {wd} || exit {NO_WORKDIR_EXIT}\n\
         {exports}exec sh -c {cmd} </dev/null\n",
        wd = qpath(workdir),
        exports = exports(env),
        cmd = quote(command),
    )
}

/// Starts a detached service in its own session (so it outlives the SSH
/// session and gets no SIGHUP), appending to its log, and prints its pid.
/// `setsid` does not fork here: a background job of a non-interactive shell
/// is not a process group leader, so `$!` is the service's pid and pgid.
/// `command` is what the log header shows; `run` is what runs (the supervisor around it).
pub fn start_service_script(
    name: &str,
    command: &str,
    run: &str,
    workdir: &Path,
    env: &[(String, String)],
    log: &Path,
    header: &str,
) -> String {
    let log_dir = log.parent().map(qpath).unwrap_or_else(|| "/".into());
    format!(
        "[ -d {wd} ] || {{ printf '{MARKER}NOWORKDIR\\n' >&2; exit {NO_WORKDIR_EXIT}; }}\n\
         cd {wd} || exit {NO_WORKDIR_EXIT}\n\
         umask 077\n\
         mkdir -p {log_dir} || exit 1\n\
         printf '%s%s at unix time %s: %s\\n' {header} {name} \"$(date +%s)\" {cmd} >> {log} || exit 1\n\
         {exports}setsid sh -c {run} </dev/null >>{log} 2>&1 &\n\
         echo \"$!\"\n",
        wd = qpath(workdir),
        log = qpath(log),
        header = quote(header),
        name = quote(name),
        exports = exports(env),
        cmd = quote(command),
        run = quote(run),
    )
}

/// A shell test that `/proc/$p/environ` holds every variable of the mark.
fn has_mark(mark: &OwnerMark) -> String {
    let mut s = String::from("e=$(tr '\\0' '\\n' 2>/dev/null < /proc/$p/environ) || return 1\n");
    for (k, v) in &mark.vars {
        s.push_str(&format!("  printf '%s\\n' \"$e\" | grep -qxF -e {} || return 1\n", quote(&format!("{k}={v}"))));
    }
    s.push_str("  return 0");
    format!("has_mark() {{\n  {s}\n}}\n")
}

/// `alive P`: the process exists and is not a zombie.
const ALIVE: &str =
    "alive() { s=$(sed 's/.*) //' /proc/$1/stat 2>/dev/null) || return 1; case $s in Z*|X*|x*) return 1;; esac; return 0; }\n";
/// `members G`: live pids of process group G.
const MEMBERS: &str = "members() { for d in /proc/[0-9]*; do q=${d#/proc/}; s=$(sed 's/.*) //' $d/stat 2>/dev/null) || continue; set -- $s; case $1 in Z*|X*|x*) continue;; esac; [ \"$3\" = \"$G\" ] && echo $q; done; }\n";

/// Prints `yes` when `pid` is alive and marked.
pub fn running_script(pid: u32, mark: &OwnerMark) -> String {
    format!("{}{ALIVE}p={pid}\nif alive $p && has_mark; then echo yes; else echo no; fi\n", has_mark(mark))
}

/// SIGTERM to the group (when its leader or a member carries the mark), SIGKILL
/// after `timeout_ms`; prints `not-running`, `terminated` or `killed`.
pub fn stop_script(pid: u32, mark: &OwnerMark, timeout_ms: u64) -> String {
    let polls = timeout_ms.div_ceil(100);
    format!(
        "{has_mark}{ALIVE}{MEMBERS}G={pid}\n\
         owned=no\n\
         p=$G; if alive $p && has_mark; then owned=yes; else for p in $(members); do has_mark && owned=yes && break; done; fi\n\
         [ $owned = yes ] || {{ echo not-running; exit 0; }}\n\
         kill -TERM -- -$G 2>/dev/null\n\
         i=0; while [ $i -lt {polls} ]; do [ -z \"$(members)\" ] && {{ echo terminated; exit 0; }}; sleep 0.1; i=$((i+1)); done\n\
         kill -KILL -- -$G 2>/dev/null\n\
         i=0; while [ $i -lt 50 ]; do [ -z \"$(members)\" ] && {{ echo killed; exit 0; }}; sleep 0.1; i=$((i+1)); done\n\
         echo 'process group still alive after SIGKILL' >&2; exit 1\n",
        has_mark = has_mark(mark),
    )
}

/// Prints `pid state ppid pgrp starttime` for every live process carrying the mark.
pub fn find_script(mark: &OwnerMark) -> String {
    format!(
        "{}for d in /proc/[0-9]*; do p=${{d#/proc/}}; has_mark || continue; s=$(sed 's/.*) //' $d/stat 2>/dev/null) || continue; set -- $s; echo \"$p $1 $2 $3 ${{20}}\"; done\n",
        has_mark(mark)
    )
}

/// Atomic replace: a temporary file in the same directory, given its mode
/// and owner, then renamed over the target.
pub fn write_script(path: &Path, mode: u32, owner: Option<&str>) -> String {
    let dir = path.parent().map(qpath).unwrap_or_else(|| "/".into());
    let chown = owner.map(|o| format!("chown {} \"$t\"\n", quote(o))).unwrap_or_default();
    format!(
        "set -e\nmkdir -p {dir}\nt=$(mktemp {dir}/.phoenix-tmp.XXXXXX)\ntrap 'rm -f \"$t\"' EXIT\ncat > \"$t\"\nchmod {mode:o} \"$t\"\n{chown}sync \"$t\" 2>/dev/null || true\nmv -f \"$t\" {p}\ntrap - EXIT\n",
        p = qpath(path),
    )
}

/// Prints `absent`, or `MODE USER:GROUP` on one line followed by the content.
pub fn read_script(path: &Path) -> String {
    let p = qpath(path);
    format!("[ -f {p} ] || {{ echo absent; exit 0; }}\nstat -c '%a %U:%G' {p} && cat {p}\n")
}

pub fn tail_script(path: &Path, max_bytes: u64) -> String {
    let p = qpath(path);
    format!("[ -f {p} ] || {{ echo absent; exit 0; }}\necho present\ntail -c {max_bytes} {p}\n")
}

pub fn remove_script(path: &Path) -> String {
    let p = qpath(path);
    format!("if [ -e {p} ] || [ -L {p} ]; then rm -f {p} && echo removed; else echo absent; fi\n")
}

pub fn rmdirs_script(dirs: &[std::path::PathBuf]) -> String {
    let list: Vec<String> = dirs.iter().map(|d| qpath(d)).collect();
    format!("for d in {}; do rmdir \"$d\" 2>/dev/null; done; true\n", list.join(" "))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn sh(script: &str) -> (String, String, i32) {
        let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
        (String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into(), out.status.code().unwrap_or(-1))
    }

    #[test]
    fn quoting_survives_the_shell() {
        for s in ["plain", "it's", "$HOME `x` \"q\" \\ ; rm -rf /", "", "multi\nline"] {
            assert_eq!(sh(&format!("printf %s {}", quote(s))).0, s);
        }
        assert!(valid_env_name("A_1") && !valid_env_name("1A") && !valid_env_name("A-B") && !valid_env_name(""));
    }

    #[test]
    fn secrets_stay_off_the_command_line() {
        let s = exec_script("echo $TOKEN", Path::new("/tmp"), &[("TOKEN".into(), "s3cr'et".into())]);
        assert!(s.contains("export TOKEN='s3cr'\\''et'"));
        let (out, err, code) = sh(&s);
        assert_eq!((out.as_str(), code), ("s3cr'et\n", 0));
        assert!(err.starts_with(&format!("{MARKER}PGID ")));
        let (_, err, code) = sh(&exec_script("true", Path::new("/nonexistent/dir"), &[]));
        assert_eq!(code, NO_WORKDIR_EXIT as i32);
        assert!(err.contains("NOWORKDIR"));
    }

    #[test]
    fn file_scripts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a b/c'd.txt");
        let w = write_script(&path, 0o640, None);
        let out = Command::new("sh")
            .arg("-c")
            .arg(&w)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(b"hello\n")?;
                c.wait()
            })
            .unwrap();
        assert!(out.success());
        let me = format!("{}:{}", sh("id -un").0.trim(), sh("id -gn").0.trim());
        assert_eq!(sh(&read_script(&path)).0, format!("640 {me}\nhello\n"));
        assert_eq!(sh(&tail_script(&path, 3)).0, "present\nlo\n");
        assert_eq!(sh(&remove_script(&path)).0, "removed\n");
        assert_eq!(sh(&remove_script(&path)).0, "absent\n");
        assert_eq!(sh(&read_script(&path)).0, "absent\n");
        sh(&rmdirs_script(&[path.parent().unwrap().to_path_buf()]));
        assert!(!path.parent().unwrap().exists());
    }

    #[test]
    fn process_scripts_parse() {
        let mark = OwnerMark { vars: vec![("PHOENIX_OWNER".into(), "nobody/x@none".into())] };
        assert_eq!(sh(&running_script(std::process::id(), &mark)).0, "no\n");
        assert_eq!(sh(&stop_script(std::process::id(), &mark, 100)).0, "not-running\n");
        assert_eq!(sh(&find_script(&mark)), (String::new(), String::new(), 0));
    }
}
