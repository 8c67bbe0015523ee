//! `phoenix`: the composition root. Only this crate names concrete providers
//! and state backends; everything else works through phoenix-core's traits.

// All output goes through `out` (never panics on a closed pipe).
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[macro_use]
mod out;

mod args;
mod commands;
mod confirm;
mod context;
mod draw;
mod exit;
mod printer;
mod progress;

use clap::Parser;

use crate::args::Cli;
use crate::exit::Exit;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version are answers; anything else is bad usage, with its
            // own code (clap's own 2 would read as "changes present" to CI).
            let _ = e.print();
            std::process::exit(if e.use_stderr() { Exit::Usage as i32 } else { Exit::Ok as i32 });
        }
    };
    let no_color = cli.global.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if no_color {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
    // Log lines are coloured on the same terms as the rest of stderr (a terminal, or CLICOLOR_FORCE).
    init_logging(cli.global.verbose, console::colors_enabled_stderr());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            std::process::exit(Exit::Error as i32);
        }
    };
    let code = runtime.block_on(commands::run(cli));
    // In-flight provider tasks were already awaited; don't wait for stray blocking threads.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code as i32);
}

/// Log filter for `-v` counts: Phoenix's own crates (every target starting
/// with `phoenix`) at warn by default; the SDKs and libraries under them
/// (aws-smithy, aws-config, hyper, russh, google-cloud…) say nothing until
/// `-v`, where their warnings join Phoenix's info lines.
fn log_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "off,phoenix=warn",
        1 => "warn,phoenix=info",
        2 => "info,phoenix=debug",
        _ => "trace",
    }
}

fn init_logging(verbose: u8, ansi: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(log_filter(verbose)));
    // Through `out`, like everything else on stderr: a closed pipe must not panic a log line.
    let writer = || LogWriter;
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi).with_target(verbose > 0).try_init();
}

/// stderr for log lines, on `out`'s terms.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        progress::above_live_area(|| out::stderr(format_args!("{}", String::from_utf8_lossy(buf))));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::log_filter;

    /// What a subscriber with `-v` × `verbose` prints for one warning from
    /// Phoenix and one from an SDK.
    fn logged(verbose: u8) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter(verbose)))
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "phoenix_provider_aws::kinds", "phoenix warning");
            tracing::warn!(target: "aws_config::imds::region", "sdk warning");
            tracing::info!(target: "phoenix_core::executor", "phoenix note");
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_default_level_shows_only_phoenix_warnings_and_v_adds_the_libraries() {
        let quiet = logged(0);
        assert!(quiet.contains("phoenix warning"), "{quiet}");
        assert!(!quiet.contains("sdk warning") && !quiet.contains("phoenix note"), "{quiet}");
        let v = logged(1);
        assert!(v.contains("phoenix warning") && v.contains("sdk warning") && v.contains("phoenix note"), "{v}");
    }
}
