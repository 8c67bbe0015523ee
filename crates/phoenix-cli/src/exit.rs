//! Exit codes that CI can branch on (documented in `phoenix --help`); the
//! engine's workflows fail with them.

pub use phoenix_engine::exit::{Exit, Failure};

pub type CmdResult = Result<Exit, Failure>;
