//! `history/`: the last N versions of `state.json`, as `state.<serial>.json`.
//!
//! A version enters history by a hard link made just before the new
//! `state.json` is renamed over it: no bytes are copied, and at no instant is
//! there no `state.json`. Pruning removes the lowest serials first.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{StateError, io_at};
use crate::{fsio, state_file};

const PREFIX: &str = "state.";
const SUFFIX: &str = ".json";

fn file_name(serial: u64) -> String {
    format!("{PREFIX}{serial}{SUFFIX}")
}

fn serial_of(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()
}

/// Versions in `history_dir`, oldest (lowest serial) first.
pub(crate) fn list(history_dir: &Path) -> Result<Vec<(u64, PathBuf)>, StateError> {
    let entries = match fs::read_dir(history_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at(history_dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_at(history_dir))?;
        if let Some(serial) = entry.file_name().to_str().and_then(serial_of) {
            out.push((serial, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Links the current `state` (at `serial`) into history.
pub(crate) fn link(state: &Path, history_dir: &Path, serial: u64) -> Result<(), StateError> {
    fsio::ensure_dir(history_dir)?;
    let target = history_dir.join(file_name(serial));
    match fs::hard_link(state, &target) {
        Ok(()) => {}
        // Left by a write that crashed between this link and its rename: the
        // same serial is the same document, so relinking is safe.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(&target).map_err(io_at(&target))?;
            fs::hard_link(state, &target).map_err(io_at(&target))?;
        }
        Err(e) => return Err(io_at(&target)(e)),
    }
    fsio::sync_dir(history_dir)
}

/// Removes the oldest versions until at most `keep` remain.
pub(crate) fn prune(history_dir: &Path, keep: usize) -> Result<(), StateError> {
    let versions = list(history_dir)?;
    let excess = versions.len().saturating_sub(keep);
    for (_, path) in versions.into_iter().take(excess) {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&path)(e)),
        }
    }
    Ok(())
}

/// The newest version that still verifies, offered when `state.json` is damaged.
pub(crate) fn newest_intact(history_dir: &Path, open: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Option<PathBuf> {
    let versions = list(history_dir).ok()?;
    versions
        .into_iter()
        .rev()
        .map(|(_, path)| path)
        .find(|path| fs::read(path).ok().and_then(|bytes| open(&bytes)).is_some_and(|bytes| state_file::decode(&bytes).is_ok()))
}
