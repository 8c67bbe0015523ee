//! How a workflow ends when it does not succeed: an error with the exit code
//! class CI can branch on (the CLI documents the codes in `phoenix --help`).

use phoenix_config::Diagnostics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Changes = 2,
    Invalid = 3,
    Locked = 4,
    /// The command line is wrong: an unknown subcommand or flag, a malformed
    /// `--var`, an environment or address that does not exist. Not 2, which
    /// `plan --detailed-exitcode` uses for "changes present"; 64 is sysexits' EX_USAGE.
    Usage = 64,
    Interrupted = 130,
}

/// A workflow's failure: what went wrong and which code to exit with.
#[derive(Debug)]
pub struct Failure {
    pub code: Exit,
    pub error: anyhow::Error,
}

/// An invalid definition: the error of a [`Failure`] with [`Exit::Invalid`]
/// whose diagnostics the CLI shows with their source snippets.
#[derive(Debug)]
pub struct InvalidDefinition(pub Diagnostics);

impl std::fmt::Display for InvalidDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_string())
    }
}

impl std::error::Error for InvalidDefinition {}

impl Failure {
    pub fn new(code: Exit, error: impl Into<anyhow::Error>) -> Self {
        Self { code, error: error.into() }
    }

    /// The "invalid" failure of a definition's problems.
    pub fn invalid(d: Diagnostics) -> Self {
        Failure::new(Exit::Invalid, InvalidDefinition(d))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::new(Exit::Error, e)
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure::new(Exit::Error, e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::new(Exit::Error, e)
    }
}
