//! `journal.log`: records appended since the last compaction.
//!
//! One line per entry, each protected by a CRC32 of its payload:
//!
//! ```text
//! <crc32 of payload, 8 lowercase hex> <payload JSON>\n
//! 1c291ca3 {"lineage":"9f0c…","after_seq":41}                       header: first line
//! 5e0b11d0 {"seq":42,"rec":{"op":"put","addr":"web-0","resource":{…}}}
//! 0a7f3b22 {"seq":43,"rec":{"op":"remove","addr":"old"}}
//! ```
//!
//! The header names the lineage the records belong to (so a first run that
//! crashes before `state.json` exists can still be recovered under its own
//! lineage) and the sequence number the journal continues from. Entries carry
//! consecutive sequence numbers; `state.json` stores the last sequence it
//! includes, so replaying a journal that a crash left behind after compaction
//! skips what is already folded in.
//!
//! A batch is written with one `write` and acknowledged only after
//! `fdatasync`, so only the last batch can be torn by a crash, and nothing in
//! it was acknowledged. Parsing therefore stops at the first line that is
//! incomplete, fails its CRC, does not parse or breaks the sequence: that is
//! the end of the journal, not an error.

use std::io::Write;

use phoenix_core::state::JournalRecord;
use serde::{Deserialize, Serialize};

use crate::crypt::StateKey;

/// The first line of every journal generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// Lineage of the state the records apply to.
    pub lineage: String,
    /// The sequence number the first entry follows.
    pub after_seq: u64,
}

#[derive(Deserialize)]
struct Entry {
    seq: u64,
    rec: JournalRecord,
}

/// What a journal holds, up to its first damaged line.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub header: Option<Header>,
    /// Entries in order, with their sequence numbers (consecutive).
    pub entries: Vec<(u64, JournalRecord)>,
    /// Bytes after the valid prefix (a torn tail, normally).
    pub ignored_bytes: usize,
    /// Whole, valid-looking lines after the damage: more than a torn tail,
    /// worth a warning.
    pub lines_after_damage: usize,
    /// A sealed line that did not open (no key, another key): reading stopped there.
    pub sealed_error: Option<crate::crypt::CryptError>,
}

impl Parsed {
    /// The sequence of the last entry, or the one the header continues from.
    pub fn last_seq(&self) -> Option<u64> {
        self.entries.last().map(|(s, _)| *s).or(self.header.as_ref().map(|h| h.after_seq))
    }
}

/// Appends `<crc> <parts…>\n`, the CRC covering the concatenated parts; with
/// a key, the parts are sealed first (one line still: see [`crate::crypt`]).
fn push_line(out: &mut Vec<u8>, parts: &[&[u8]], key: Option<&StateKey>) {
    let sealed;
    let parts = match key {
        Some(k) => {
            sealed = crate::crypt::seal(k, &parts.concat());
            &[sealed.as_slice()][..]
        }
        None => parts,
    };
    let mut crc = crc32fast::Hasher::new();
    parts.iter().for_each(|p| crc.update(p));
    write!(out, "{:08x} ", crc.finalize()).expect("writing to a Vec");
    parts.iter().for_each(|p| out.extend_from_slice(p));
    out.push(b'\n');
}

/// Appends the header line.
pub(crate) fn push_header(out: &mut Vec<u8>, header: &Header, key: Option<&StateKey>) {
    let json = serde_json::to_vec(header).expect("Header serializes");
    push_line(out, &[&json], key);
}

/// Appends one entry; `record_json` is the record already serialized (done by
/// the recording task, so serialization runs in parallel and not on the
/// writer thread).
pub(crate) fn push_entry(out: &mut Vec<u8>, seq: u64, record_json: &[u8], key: Option<&StateKey>) {
    let prefix = format!("{{\"seq\":{seq},\"rec\":");
    push_line(out, &[prefix.as_bytes(), record_json, b"}"], key);
}

/// Returns the verified payload of a complete line, or `None` if damaged.
fn payload(line: &[u8]) -> Option<&[u8]> {
    if line.len() < 9 || line[8] != b' ' {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(&line[..8]).ok()?, 16).ok()?;
    let payload = &line[9..];
    (crc32fast::hash(payload) == crc).then_some(payload)
}

/// Reads a plain journal up to its first damaged line.
#[cfg(test)]
pub(crate) fn parse(bytes: &[u8]) -> Parsed {
    parse_with(bytes, None)
}

/// Reads a journal up to its first damaged line, opening sealed lines with
/// `key`. A sealed line that does not open stops the reading with
/// [`Parsed::sealed_error`] set: that is not damage a crash can cause.
pub(crate) fn parse_with(bytes: &[u8], key: Option<&StateKey>) -> Parsed {
    let mut parsed = Parsed::default();
    let mut rest = bytes;
    let mut next_seq = 0;
    while !rest.is_empty() {
        // A line without its newline was cut short by a crash.
        let Some(end) = rest.iter().position(|&b| b == b'\n') else { break };
        let line = &rest[..end];
        let opened = match payload(line).map(|p| crate::crypt::open(key, p)) {
            Some(Err(e)) => {
                parsed.sealed_error = Some(e);
                break;
            }
            Some(Ok(p)) => Some(p),
            None => None,
        };
        let ok = opened.as_deref().and_then(|p| {
            if parsed.header.is_none() {
                let header: Header = serde_json::from_slice(p).ok()?;
                next_seq = header.after_seq + 1;
                parsed.header = Some(header);
            } else {
                let entry: Entry = serde_json::from_slice(p).ok()?;
                if entry.seq != next_seq {
                    return None;
                }
                next_seq += 1;
                parsed.entries.push((entry.seq, entry.rec));
            }
            Some(())
        });
        if ok.is_none() {
            break;
        }
        rest = &rest[end + 1..];
    }
    parsed.ignored_bytes = rest.len();
    if !rest.is_empty() {
        parsed.lines_after_damage = rest.split(|&b| b == b'\n').skip(1).filter(|l| !l.is_empty() && payload(l).is_some()).count();
    }
    parsed
}

#[cfg(test)]
mod tests {
    use phoenix_core::ResourceAddr;

    use super::*;

    fn journal(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        push_header(&mut out, &Header { lineage: "l".into(), after_seq: 10 }, None);
        for seq in 11..11 + n {
            let rec = JournalRecord::Remove { addr: ResourceAddr::new_unchecked(format!("r{seq}")) };
            push_entry(&mut out, seq, &serde_json::to_vec(&rec).unwrap(), None);
        }
        out
    }

    #[test]
    fn round_trips() {
        let p = parse(&journal(3));
        assert_eq!(p.header, Some(Header { lineage: "l".into(), after_seq: 10 }));
        assert_eq!(p.entries.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![11, 12, 13]);
        assert_eq!(p.ignored_bytes, 0);
        assert_eq!(p.last_seq(), Some(13));
    }

    #[test]
    fn every_torn_tail_keeps_the_complete_lines() {
        let bytes = journal(3);
        let ends: Vec<usize> = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).collect();
        for len in 0..=bytes.len() {
            let complete = ends.iter().filter(|&&e| e <= len).count();
            let p = parse(&bytes[..len]);
            assert_eq!(p.header.is_some() as usize + p.entries.len(), complete, "cut at {len}");
        }
    }

    #[test]
    fn stops_at_a_bad_crc_and_counts_what_follows() {
        let mut bytes = journal(3);
        let second_line = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        bytes[second_line + 20] ^= 0x01;
        let p = parse(&bytes);
        assert!(p.entries.is_empty());
        assert_eq!(p.lines_after_damage, 2);
    }

    #[test]
    fn stops_at_a_sequence_gap() {
        let mut bytes = journal(1);
        let rec = serde_json::to_vec(&JournalRecord::Remove { addr: ResourceAddr::new_unchecked("x") }).unwrap();
        push_entry(&mut bytes, 13, &rec, None);
        assert_eq!(parse(&bytes).entries.len(), 1);
    }
}
