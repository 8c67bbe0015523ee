//! The state directory as a whole: reading `state.json` with the journal
//! replayed on top, and committing a new `state.json`.
//!
//! # Serial rule
//! The serial of what is on disk is the serial in `state.json`, plus one if
//! the journal holds records that `state.json` does not include yet. A
//! compaction writes exactly that serial, so `load` returns the same serial
//! before a crashed run is recovered and after, and it never goes backwards.

use std::io::Write;
use std::path::{Path, PathBuf};

use phoenix_core::state::{STATE_FORMAT_VERSION, StateDoc};

use crate::error::StateError;
use crate::state_file::DecodeError;
use crate::{fsio, history, journal_log, state_file};

/// `state.json`: the compacted document.
pub(crate) const STATE_FILE: &str = "state.json";
/// Where a new `state.json` is written before it is renamed into place.
pub(crate) const STATE_TEMP: &str = ".state.json.tmp";
/// `journal.log`: records since the last compaction.
pub(crate) const JOURNAL_FILE: &str = "journal.log";
/// `history/`: previous versions of `state.json`.
pub(crate) const HISTORY_DIR: &str = "history";

/// Paths inside one state directory, and how much history to keep.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub dir: PathBuf,
    pub keep_history: usize,
    /// Encryption at rest: the key from `PHOENIX_STATE_KEY`, or why it is unusable.
    pub key: Result<Option<crate::crypt::StateKey>, crate::crypt::CryptError>,
}

impl Layout {
    pub fn state(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }
    pub fn temp(&self) -> PathBuf {
        self.dir.join(STATE_TEMP)
    }
    pub fn journal(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }
    pub fn history(&self) -> PathBuf {
        self.dir.join(HISTORY_DIR)
    }
    /// The encryption key, if any; a malformed `PHOENIX_STATE_KEY` is an error.
    pub fn key(&self) -> Result<Option<&crate::crypt::StateKey>, StateError> {
        self.key.as_ref().map(Option::as_ref).map_err(|e| StateError::Encryption { path: self.dir.clone(), reason: e.to_string() })
    }
    /// The bytes of a state file as stored (sealed when a key is set).
    pub fn seal(&self, bytes: &[u8]) -> Result<Vec<u8>, StateError> {
        Ok(match self.key()? {
            Some(k) => crate::crypt::seal(k, bytes),
            None => bytes.to_vec(),
        })
    }
    /// The plain bytes of a stored state file at `path`.
    pub fn open<'a>(&self, path: &Path, bytes: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, StateError> {
        crate::crypt::open(self.key()?, bytes).map_err(|e| StateError::Encryption { path: path.to_path_buf(), reason: e.to_string() })
    }
}

/// What the directory holds, with live journal records applied.
#[derive(Debug)]
pub(crate) struct DiskState {
    /// `state.json` (or a new document) with live journal records applied.
    pub doc: StateDoc,
    /// Whether the lineage came from disk (`state.json` or a journal header);
    /// `false` means nothing was ever written and `doc` has a fresh lineage.
    pub exists: bool,
    /// The serial stored in `state.json`, if there is one.
    pub state_serial: Option<u64>,
    /// Size of `state.json` in bytes (0 if none).
    pub state_len: u64,
    /// The highest journal sequence number seen in `state.json` or the journal.
    pub last_seq: u64,
    /// How many journal records were applied on top of `state.json`.
    pub replayed: usize,
    /// Size of `journal.log` in bytes (0 if none).
    pub journal_len: u64,
    /// Whether the journal has intact lines after a damaged one (more than
    /// a torn tail).
    pub journal_damaged: bool,
}

fn scope(environment: &str, instance: Option<&str>) -> String {
    match instance {
        Some(i) => format!("{environment}/{i}"),
        None => environment.to_string(),
    }
}

fn corrupt(layout: &Layout, path: PathBuf, reason: String) -> StateError {
    let opens = |bytes: &[u8]| layout.open(Path::new(""), bytes).ok().map(|b| b.into_owned());
    StateError::Corrupt { path, reason, previous: history::newest_intact(&layout.history(), opens) }
}

/// Reads `state.json` and replays the journal on top, in memory.
pub(crate) fn read(layout: &Layout, environment: &str, instance: Option<&str>) -> Result<DiskState, StateError> {
    let state_path = layout.state();
    let journal_path = layout.journal();

    // The journal is read before state.json. A reader holds no lock, so a
    // compaction may happen between the two reads; in this order that only
    // means state.json is newer than the journal read, whose records it then
    // already includes. The other order could pair an old state.json with a
    // journal continuing a newer one, which looks like a gap.
    let journal_bytes = fsio::read_optional(&journal_path)?.unwrap_or_default();
    let journal = journal_log::parse_with(&journal_bytes, layout.key()?);
    if let Some(e) = &journal.sealed_error {
        return Err(StateError::Encryption { path: journal_path, reason: e.to_string() });
    }
    let stored = match fsio::read_optional(&state_path)? {
        None => None,
        Some(stored) => match state_file::decode(&layout.open(&state_path, &stored)?) {
            Ok((doc, seq)) => Some((doc, seq, stored.len() as u64)),
            Err(DecodeError::Corrupt(reason)) => return Err(corrupt(layout, state_path, reason)),
            Err(DecodeError::Unsupported(found)) => {
                return Err(StateError::UnsupportedFormat { path: state_path, found, supported: STATE_FORMAT_VERSION });
            }
        },
    };
    if journal.lines_after_damage > 0 {
        // A crash only ever tears the last batch; intact lines after a damaged
        // one mean the file was damaged some other way. They are not replayed
        // (their predecessors are unknown), but someone should know.
        tracing::warn!(
            path = %journal_path.display(),
            lines = journal.lines_after_damage,
            "journal has intact lines after a damaged one; replay stopped at the damage"
        );
    }

    let state_serial = stored.as_ref().map(|(d, _, _)| d.serial);
    let state_len = stored.as_ref().map_or(0, |(_, _, len)| *len);
    let exists = stored.is_some() || journal.header.is_some();
    let (mut doc, included_seq) = match stored {
        Some((doc, seq, _)) => (doc, seq),
        None => match &journal.header {
            // A first run that crashed before its first compaction.
            Some(h) if h.after_seq == 0 => (StateDoc::new(environment, instance, h.lineage.clone()), 0),
            Some(h) => {
                return Err(corrupt(
                    layout,
                    state_path,
                    format!("the file is missing, but journal.log continues a state that included journal record {}", h.after_seq),
                ));
            }
            None => (StateDoc::new(environment, instance, uuid::Uuid::new_v4().to_string()), 0),
        },
    };
    if doc.environment != environment || doc.instance.as_deref() != instance {
        return Err(StateError::WrongEnvironment {
            path: state_path,
            expected: scope(environment, instance),
            found: scope(&doc.environment, doc.instance.as_deref()),
        });
    }

    let live: Vec<_> = journal.entries.iter().filter(|(seq, _)| *seq > included_seq).collect();
    if let (Some((first, _)), Some(header)) = (live.first(), &journal.header) {
        if header.lineage != doc.lineage {
            return Err(corrupt(
                layout,
                journal_path,
                format!("its records belong to lineage {}, state.json to lineage {}", header.lineage, doc.lineage),
            ));
        }
        if *first != included_seq + 1 {
            return Err(corrupt(
                layout,
                journal_path,
                format!("it continues from record {}, but state.json only includes records up to {included_seq}", first - 1),
            ));
        }
    }
    for (_, record) in &live {
        doc.apply_record(record);
    }
    if !live.is_empty() {
        doc.serial += 1;
    }
    Ok(DiskState {
        doc,
        exists,
        state_serial,
        state_len,
        last_seq: journal.last_seq().unwrap_or(0).max(included_seq),
        replayed: live.len(),
        journal_len: journal_bytes.len() as u64,
        journal_damaged: journal.lines_after_damage > 0,
    })
}

/// Makes `bytes` (an encoded `state.json`) the current state, linking the
/// version it replaces (whose serial is `replaced`) into history first.
/// Returns the number of bytes written.
pub(crate) fn commit(layout: &Layout, bytes: &[u8], replaced: Option<u64>) -> Result<u64, StateError> {
    let bytes = &layout.seal(bytes)?;
    fsio::ensure_dir(&layout.dir)?;
    let state = layout.state();
    let history_dir = layout.history();
    fsio::replace_atomically(
        &state,
        &layout.temp(),
        |f| f.write_all(bytes),
        || match replaced {
            Some(serial) if layout.keep_history > 0 => history::link(&state, &history_dir, serial),
            _ => Ok(()),
        },
    )?;
    // The new state is committed; failing to prune only leaves an extra old
    // version behind, which must not make the caller think the write failed.
    if let Err(e) = history::prune(&history_dir, layout.keep_history) {
        tracing::warn!(error = %e, "could not prune state history");
    }
    Ok(bytes.len() as u64)
}

/// Encodes and commits `doc`, which includes journal records up to `journal_seq`.
pub(crate) fn commit_doc(layout: &Layout, doc: &StateDoc, journal_seq: u64, replaced: Option<u64>) -> Result<u64, StateError> {
    commit(layout, &state_file::encode(doc, journal_seq), replaced)
}

/// Whether `path` names the same directory as `other`, tolerating spelling
/// differences (`./x` vs `x`) when both exist.
pub(crate) fn same_dir(path: &Path, other: &Path) -> bool {
    path == other || matches!((path.canonicalize(), other.canonicalize()), (Ok(a), Ok(b)) if a == b)
}
