//! Loading an environment: the environment file, its templates and variables,
//! rendered and parsed into a [`phoenix_core::definition::Definition`], with
//! every problem located at a file, line and column.
//!
//! ```text
//! environments/dev.toml ─┐
//!   [vars] + --var       ├─ render (minijinja, confined to templates/) ─► TOML text
//! templates/dev.toml.j2 ─┘                                                 │
//!                                   parse (spans kept) ◄────────────────────┘
//!                                          │
//!                           Definition + SourceMap ─► validate ─► Diagnostics
//! ```
// Only the CLI prints; libraries report through return values, events and tracing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod diagnostics;
pub mod environment;
pub mod hostile;
pub mod parse;
pub mod render;

pub use diagnostics::{Diagnostic, Diagnostics, Location};
pub use environment::{LoadOptions, LoadedEnvironment, Project, StateSpec, VarOrigin};
