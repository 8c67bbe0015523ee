//! Phoenix's engine: the workflows between the CLI and core/config/state/providers,
//! and the one event type they report through ([`event::Event`]).
//!
//! Each workflow takes a loaded [`env::Env`] and typed options, reports what
//! happens through a [`report::Reporter`] (or the hooks of a run), and
//! returns a typed report; none calls a command, and none prints: only the
//! CLI does.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod env;
pub mod event;
pub mod exit;
pub mod gc;
pub mod plan;
pub mod recovery;
pub mod refresh;
pub mod report;
pub mod run;
pub mod surgery;
