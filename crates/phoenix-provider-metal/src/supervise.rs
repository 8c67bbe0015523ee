//! The supervisor a `metal.service` runs under when the host has no systemd:
//! a POSIX `sh` loop that restarts the command by its [`Restart`] policy with
//! a capped backoff, and says so in the service log. It is the service's
//! process (and group) leader, so stopping the group stops both, and the
//! restart lines let a start that fails at once be told from one that runs.

use crate::ssh::shell::quote;
use crate::transport::Restart;

/// Begins each line the supervisor writes to the log when the command ended.
pub const EXIT_MARK: &str = "--- phoenix: service exited with code ";

/// Longest wait between restarts, and how long a run must last to reset the backoff.
const MAX_BACKOFF_SECS: u32 = 30;

/// The script to run with `sh -c` in place of `command`.
pub fn supervised(command: &str, restart: Restart) -> String {
    let policy = match restart {
        Restart::No => "exit $code",
        Restart::OnFailure => "[ $code -eq 0 ] && exit 0",
        Restart::Always => ":",
    };
    format!(
        "delay=1\n\
         while :; do\n\
         \x20 started=$(date +%s)\n\
         \x20 sh -c {cmd} </dev/null\n\
         \x20 code=$?\n\
         \x20 printf '%s%s\\n' {mark} \"$code\"\n\
         \x20 {policy}\n\
         \x20 [ $(( $(date +%s) - started )) -ge {max} ] && delay=1\n\
         \x20 sleep $delay\n\
         \x20 delay=$(( delay * 2 )); [ $delay -gt {max} ] && delay={max}\n\
         done\n",
        cmd = quote(command),
        mark = quote(EXIT_MARK),
        max = MAX_BACKOFF_SECS,
    )
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::*;

    fn run(script: &str) -> (String, Option<i32>) {
        let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.code())
    }

    #[test]
    fn policies_decide_whether_the_command_runs_again() {
        // A command that fails twice, then succeeds (a counter file tells the runs apart).
        let dir = tempfile::tempdir().unwrap();
        let n = dir.path().join("n");
        let flaky = format!("echo x >> {0}; [ $(wc -l < {0}) -ge 3 ]", n.display());
        let started = Instant::now();
        let (out, code) = run(&supervised(&flaky, Restart::OnFailure));
        assert_eq!(code, Some(0));
        assert_eq!(out, format!("{EXIT_MARK}1\n{EXIT_MARK}1\n{EXIT_MARK}0\n"));
        // Backoff 1 s then 2 s.
        assert!(started.elapsed() >= Duration::from_secs(3));

        let (out, code) = run(&supervised("exit 7", Restart::No));
        assert_eq!((out, code), (format!("{EXIT_MARK}7\n"), Some(7)));
        let (out, code) = run(&supervised("echo 'it''s'; exit 0", Restart::OnFailure));
        assert_eq!((out, code), (format!("its\n{EXIT_MARK}0\n"), Some(0)));
    }
}
