//! The supervisor a `metal.service` runs under when the host has no systemd:
//! a POSIX `sh` loop that restarts the command by its [`Restart`] policy with
//! a capped backoff, and says so in the service log. It is the service's
//! process (and group) leader, so stopping the group stops both, and the
//! restart lines let a start that fails at once be told from one that runs.

use crate::ssh::shell::quote;
use crate::transport::Restart;

/// Begins each line the supervisor writes to the log when the command ended:
/// `<EXIT_MARK><code> after <ms> ms`.
pub const EXIT_MARK: &str = "--- phoenix: service exited with code ";

/// Whether `log` (a start's log lines) shows the command ending within `ms` of being started.
pub fn exited_within(log: &str, ms: u64) -> bool {
    log.lines().filter_map(|l| l.strip_prefix(EXIT_MARK)).any(|rest| {
        rest.split_once(" after ").and_then(|(_, t)| t.strip_suffix(" ms")).and_then(|t| t.parse::<u64>().ok()).is_some_and(|t| t < ms)
    })
}

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
         \x20 started=$(date +%s%N)\n\
         \x20 sh -c {cmd} </dev/null\n\
         \x20 code=$?\n\
         \x20 ran=$(( ($(date +%s%N) - started) / 1000000 ))\n\
         \x20 printf '%s%s after %s ms\\n' {mark} \"$code\" \"$ran\"\n\
         \x20 {policy}\n\
         \x20 [ $ran -ge {max}000 ] && delay=1\n\
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
        let codes: Vec<&str> = out.lines().map(|l| l.strip_prefix(EXIT_MARK).unwrap().split(' ').next().unwrap()).collect();
        assert_eq!(codes, ["1", "1", "0"], "{out}");
        // Backoff 1 s then 2 s.
        assert!(started.elapsed() >= Duration::from_secs(3));
        assert!(exited_within(&out, 1000));

        let (out, code) = run(&supervised("exit 7", Restart::No));
        assert!(out.starts_with(&format!("{EXIT_MARK}7 after ")) && code == Some(7), "{out}");
        let (out, code) = run(&supervised("sleep 0.3; echo 'it''s'; exit 0", Restart::OnFailure));
        assert!(out.starts_with(&format!("its\n{EXIT_MARK}0 after ")) && code == Some(0), "{out}");
        assert!(exited_within(&out, 1000) && !exited_within(&out, 250), "{out}");
    }
}
