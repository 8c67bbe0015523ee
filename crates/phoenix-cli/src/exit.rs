//! Exit codes that CI can branch on (documented in `phoenix --help`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Changes = 2,
    Invalid = 3,
    Locked = 4,
    Interrupted = 130,
}

/// A command's failure: what to print and which code to exit with.
#[derive(Debug)]
pub struct Failure {
    pub code: Exit,
    pub error: anyhow::Error,
}

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
