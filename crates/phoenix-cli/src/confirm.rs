//! Confirmation of destructive commands: a typed `yes` on a terminal, never a
//! guess without one (CI passes `--yes`).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::anyhow;

use crate::exit::{Exit, Failure};

/// Refuses when stdin is not a terminal, so a script never destroys by accident.
pub fn require_terminal(action: &str) -> Result<(), Failure> {
    if std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(Failure::new(Exit::Error, anyhow!("refusing to {action} without confirmation: stdin is not a terminal; pass --yes to approve")))
}

/// Names what will be lost for good, then asks. Anything but `yes` cancels.
pub fn ask(action: &str, lost: &[String]) -> Result<(), Failure> {
    require_terminal(action)?;
    warn_lost(lost);
    err!("\nDo you want to {action}? Only `yes` is accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == "yes" { Ok(()) } else { Err(Failure::new(Exit::Error, anyhow!("cancelled: nothing was changed"))) }
}

/// The data a command destroys, printed even when `--yes` approved it.
pub fn warn_lost(lost: &[String]) {
    if lost.is_empty() {
        return;
    }
    errln!("{} this destroys data that cannot be recovered from Phoenix's definition:", console::style("warning:").yellow().bold());
    for l in lost {
        errln!("  - {l}");
    }
}
