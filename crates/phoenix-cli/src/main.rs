//! `phoenix`: the composition root. Only this crate names concrete providers
//! and state backends; everything else works through phoenix-core's traits.

mod args;
mod commands;
mod confirm;
mod context;
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
    init_logging(cli.global.verbose);
    if cli.global.no_color || std::env::var_os("NO_COLOR").is_some() {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(Exit::Error as i32);
        }
    };
    let code = runtime.block_on(commands::run(cli));
    // In-flight provider tasks were already awaited; don't wait for stray blocking threads.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code as i32);
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}
