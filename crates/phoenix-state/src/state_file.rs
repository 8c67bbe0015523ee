//! `state.json`: the compacted document inside a checksummed envelope.
//!
//! ```text
//! {"checksum":"sha256:<hex>","journal_seq":<n>,"state":{ ...StateDoc... }}\n
//! ```
//!
//! - `state` is the [`StateDoc`] as compact JSON (`jq .state state.json` shows it).
//! - `journal_seq` is the sequence number of the last journal record folded
//!   into `state`; replay skips records at or below it (see [`crate::journal_log`]).
//! - `checksum` is SHA-256 over `"<journal_seq>\n"` followed by the exact
//!   bytes of the `state` value as they appear in the file, so a flipped bit
//!   or a truncated file is detected before anything trusts the content.

use std::io::Write;

use phoenix_core::state::{STATE_FORMAT_VERSION, StateDoc};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Why a `state.json` could not be used.
#[derive(Debug, PartialEq)]
pub(crate) enum DecodeError {
    /// Damaged: truncated, not JSON, checksum mismatch, wrong shape.
    Corrupt(String),
    /// Intact, but written by a newer Phoenix.
    Unsupported(u32),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    checksum: String,
    journal_seq: u64,
    #[serde(borrow)]
    state: &'a RawValue,
}

fn checksum(journal_seq: u64, state: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(format!("{journal_seq}\n").as_bytes());
    h.update(state);
    let digest = h.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Serializes `doc` (which includes journal records up to `journal_seq`).
pub(crate) fn encode(doc: &StateDoc, journal_seq: u64) -> Vec<u8> {
    // StateDoc holds only strings, numbers, maps and JSON values with string
    // keys, so serialization cannot fail.
    let state = serde_json::to_vec(doc).expect("StateDoc serializes to JSON");
    let sum = checksum(journal_seq, &state);
    let mut out = Vec::with_capacity(state.len() + 128);
    write!(out, "{{\"checksum\":\"{sum}\",\"journal_seq\":{journal_seq},\"state\":").expect("writing to a Vec");
    out.extend_from_slice(&state);
    out.extend_from_slice(b"}\n");
    out
}

/// Parses and verifies a `state.json`; returns the document and the journal
/// sequence it includes.
pub(crate) fn decode(bytes: &[u8]) -> Result<(StateDoc, u64), DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Corrupt("the file is empty".into()));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::Corrupt(format!("not UTF-8: {e}")))?;
    let env: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
        DecodeError::Corrupt(if e.is_eof() { format!("truncated ({e})") } else { format!("not a Phoenix state file ({e})") })
    })?;
    let expected = checksum(env.journal_seq, env.state.get().as_bytes());
    if env.checksum != expected {
        return Err(DecodeError::Corrupt(format!("checksum mismatch: the file says {}, its content hashes to {expected}", env.checksum)));
    }
    // Look at the version before the full shape, so a newer format gets an
    // "upgrade" message rather than a parse error.
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let version: Version =
        serde_json::from_str(env.state.get()).map_err(|e| DecodeError::Corrupt(format!("the state has no format version ({e})")))?;
    if version.format_version > STATE_FORMAT_VERSION {
        return Err(DecodeError::Unsupported(version.format_version));
    }
    let doc: StateDoc =
        serde_json::from_str(env.state.get()).map_err(|e| DecodeError::Corrupt(format!("the state does not parse ({e})")))?;
    Ok((doc, env.journal_seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> StateDoc {
        StateDoc::new("dev", Some("pr-1"), "lineage-1".into())
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&doc(), 42);
        assert_eq!(decode(&bytes), Ok((doc(), 42)));
        assert!(bytes.ends_with(b"}\n"));
    }

    #[test]
    fn detects_every_truncation() {
        let bytes = encode(&doc(), 3);
        // The trailing newline is cosmetic; every shorter prefix must fail.
        for len in 0..bytes.len() - 1 {
            assert!(matches!(decode(&bytes[..len]), Err(DecodeError::Corrupt(_))), "prefix of {len} bytes accepted");
        }
    }

    #[test]
    fn detects_flipped_content_and_sequence() {
        let bytes = encode(&doc(), 3);
        let text = String::from_utf8(bytes).unwrap();
        let tampered = text.replace("\"dev\"", "\"prd\"");
        assert!(matches!(decode(tampered.as_bytes()), Err(DecodeError::Corrupt(r)) if r.contains("checksum mismatch")));
        let tampered = text.replace("\"journal_seq\":3", "\"journal_seq\":2");
        assert!(matches!(decode(tampered.as_bytes()), Err(DecodeError::Corrupt(r)) if r.contains("checksum mismatch")));
    }

    #[test]
    fn refuses_newer_formats() {
        let mut d = doc();
        d.format_version = STATE_FORMAT_VERSION + 1;
        assert_eq!(decode(&encode(&d, 0)), Err(DecodeError::Unsupported(STATE_FORMAT_VERSION + 1)));
    }
}
