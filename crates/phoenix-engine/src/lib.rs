//! Phoenix's engine: the workflows between the CLI and core/config/state/providers,
//! and the one event type they report through ([`event::Event`]).
//!
//! Only the CLI prints: this crate returns reports and emits events.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod event;
