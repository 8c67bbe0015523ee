//! Commands about phoenix itself: `version` and `completions`.

use clap::CommandFactory;

use crate::args::Cli;
use crate::context;
use crate::exit::{CmdResult, Exit};
use crate::printer::Printer;

/// The state backends compiled into this binary.
fn state_backends() -> Vec<&'static str> {
    let mut out = vec!["local"];
    if cfg!(feature = "s3") {
        out.push("s3");
    }
    out
}

pub fn version(printer: &Printer) -> CmdResult {
    let registry = context::registry();
    let providers: Vec<&str> = registry.provider_names().filter(|n| *n != phoenix_core::builtin::PROVIDER_NAME).collect();
    let version = env!("CARGO_PKG_VERSION");
    if printer.json {
        println!("{}", serde_json::json!({"version": version, "providers": providers, "state_backends": state_backends()}));
    } else {
        println!("phoenix {version}");
        println!("providers: {}", providers.join(", "));
        println!("state backends: {}", state_backends().join(", "));
    }
    Ok(Exit::Ok)
}

pub fn completions(shell: clap_complete::Shell) -> CmdResult {
    clap_complete::generate(shell, &mut Cli::command(), "phoenix", &mut std::io::stdout());
    Ok(Exit::Ok)
}
