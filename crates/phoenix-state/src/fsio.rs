//! Small filesystem primitives with the durability and permission rules the
//! backend relies on: private modes (0700 directories, 0600 files) and the
//! temp-file + fsync + rename + directory-fsync dance for atomic replacement.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{StateError, io_at};

/// Creates `dir` (and missing parents) with mode 0700: state may hold
/// resource addresses and sealed secrets that other users have no business
/// reading. An existing directory is left as the user set it up.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), StateError> {
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(io_at(dir)(e)),
    }
}

/// Makes the directory entries of `dir` (creations, renames, links) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_at(dir))
}

/// Opens `path` for appending, creating it with mode 0600. Returns whether it
/// was created, in which case the caller must [`sync_dir`] before relying on
/// data written to it.
pub(crate) fn open_append(path: &Path) -> Result<(File, bool), StateError> {
    match OpenOptions::new().append(true).read(true).create_new(true).mode(0o600).open(path) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            OpenOptions::new().append(true).read(true).open(path).map(|f| (f, false)).map_err(io_at(path))
        }
        Err(e) => Err(io_at(path)(e)),
    }
}

/// Reads a whole file; `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(path)(e)),
    }
}

/// Empties `path` durably if it exists. The truncation is synced before
/// anything new is appended, so stale bytes can never resurface behind new
/// ones after a crash.
pub(crate) fn truncate_durably(path: &Path) -> Result<(), StateError> {
    match OpenOptions::new().write(true).open(path) {
        Ok(f) => f.set_len(0).and_then(|()| f.sync_all()).map_err(io_at(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(path)(e)),
    }
}

/// Replaces `target` with `bytes` atomically: readers (and a crash at any
/// instant) see either the old file or the complete new one, never a mix.
///
/// The bytes go to `temp` in the same directory (so the rename cannot cross
/// filesystems), are fsynced, then `before_rename` runs (the caller links the
/// old version into history there, while it is still in place), then the
/// rename, then an fsync of the directory so the rename itself survives a
/// power loss. If anything before the rename fails, `temp` is removed and
/// `target` is untouched.
pub(crate) fn replace_atomically(
    target: &Path,
    temp: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
    before_rename: impl FnOnce() -> Result<(), StateError>,
) -> Result<(), StateError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let written = (|| {
        // A temp file left by a crashed writer is garbage: start afresh so
        // the new file is created with our mode.
        match fs::remove_file(temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(temp)(e)),
        }
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(temp).map_err(io_at(temp))?;
        fill(&mut file).and_then(|()| file.flush()).and_then(|()| file.sync_all()).map_err(io_at(temp))?;
        before_rename()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(temp);
        return Err(e);
    }
    fs::rename(temp, target).map_err(io_at(target))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::testing::mode;

    #[test]
    fn a_failed_fill_leaves_the_old_file_and_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("state.json");
        let temp = tmp.path().join(".state.json.tmp");
        fs::write(&target, b"old").unwrap();
        let err = replace_atomically(
            &target,
            &temp,
            |f| {
                f.write_all(b"half of the new")?;
                Err(io::Error::other("disk full"))
            },
            || Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert!(!temp.exists());
    }

    #[test]
    fn a_failed_history_link_leaves_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("state.json");
        let temp = tmp.path().join(".state.json.tmp");
        fs::write(&target, b"old").unwrap();
        let failing = || Err(io_at(Path::new("history"))(io::Error::other("no space")));
        assert!(replace_atomically(&target, &temp, |f| f.write_all(b"new"), failing).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert!(!temp.exists());
    }

    #[test]
    fn replaces_a_leftover_temp_and_creates_private_files() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("state.json");
        let temp = tmp.path().join(".state.json.tmp");
        fs::write(&temp, b"garbage left by a crash").unwrap();
        replace_atomically(&target, &temp, |f| f.write_all(b"new"), || Ok(())).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(mode(&target), 0o600);
        assert!(!temp.exists());
    }

    #[test]
    fn creates_private_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("b");
        ensure_dir(&dir).unwrap();
        ensure_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
    }
}
