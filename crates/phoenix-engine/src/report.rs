//! The one way workflows tell the outside what happens: [`Reporter`].

use crate::event::Event;

/// Receives a workflow's events as they happen. The CLI writes them as
/// `--json` lines or renders them for people; the engine never prints.
pub trait Reporter: Send + Sync {
    /// Something a machine may act on (every `--json` line is one).
    fn event(&self, event: &Event);
    /// A remark for people only (the providers' preflight lines, a recovered journal…).
    fn note(&self, text: &str);
}

/// A reporter that drops everything (tests, nested workflows whose events nobody reads).
pub struct NullReporter;

impl Reporter for NullReporter {
    fn event(&self, _event: &Event) {}
    fn note(&self, _text: &str) {}
}
