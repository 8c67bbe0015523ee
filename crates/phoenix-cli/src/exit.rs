//! Exit codes that CI can branch on (documented in `phoenix --help`).

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

/// A command's failure: what to print and which code to exit with.
#[derive(Debug)]
pub struct Failure {
    pub code: Exit,
    pub error: anyhow::Error,
}

/// An error already shown to the user (diagnostics with source snippets):
/// the command's end prints nothing more for it.
#[derive(Debug)]
pub struct AlreadyShown(pub String);

impl std::fmt::Display for AlreadyShown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AlreadyShown {}

impl Failure {
    pub fn new(code: Exit, error: impl Into<anyhow::Error>) -> Self {
        Self { code, error: error.into() }
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

pub type CmdResult = Result<Exit, Failure>;
