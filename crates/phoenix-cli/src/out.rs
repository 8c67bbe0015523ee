//! Every byte the CLI writes to stdout or stderr goes through here, so that a
//! closed pipe (`phoenix render staging | head -1`, `phoenix up … | tail`
//! after Ctrl-C) never panics the way `println!` does.
//!
//! Why not reset SIGPIPE to its default and let the kernel end the process:
//! `up` and `down` must not die half-way because the reader of their output
//! went away. After a Ctrl-C that also ends `tail`, the in-flight operations
//! still have to finish and be recorded before the process leaves, and a
//! process killed by a signal exits with no code a script can test (141 in a
//! shell). So a broken pipe only means "stop writing there": later writes to
//! that stream are dropped, and the command finishes and exits as it would
//! have (0 for `render`, 130 for an interrupted `up`).

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout; a closed pipe silences stdout for the rest of the run.
pub fn stdout(args: fmt::Arguments<'_>) {
    write_to(&mut io::stdout().lock(), &STDOUT_CLOSED, args);
}

/// Writes to stderr; a closed pipe silences stderr for the rest of the run.
pub fn stderr(args: fmt::Arguments<'_>) {
    write_to(&mut io::stderr().lock(), &STDERR_CLOSED, args);
}

/// Bytes (a rendered plan, a whole document) to stdout, on the same terms as [`stdout`].
pub fn stdout_bytes(bytes: &[u8]) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut lock = io::stdout().lock();
    if lock.write_all(bytes).and_then(|()| lock.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

fn write_to(w: &mut impl Write, closed: &AtomicBool, args: fmt::Arguments<'_>) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    // Flushed at once: progress lines must reach a pipe as they happen, not when a buffer fills.
    // EPIPE, or any other write error (a full disk behind a redirect): the
    // command cannot report it either, the stream it would report on is the
    // one that failed. Either way, stop writing there.
    if w.write_fmt(args).and_then(|()| w.flush()).is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

// Made visible to every module by `#[macro_use] mod out` at the top of main.rs.

/// `println!` that never panics: see the module docs.
macro_rules! outln {
    () => { $crate::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that never panics.
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::stdout(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    () => { $crate::out::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that never panics.
macro_rules! err {
    ($($arg:tt)*) => { $crate::out::stderr(format_args!($($arg)*)) };
}
