//! Writing outputs so that nothing is lost: a temporary file beside the target, renamed into place
//! only once complete, and never over an existing file unless the user said `--force`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Fails when `path` exists and `force` is false.
pub fn check_overwrite(path: &Path, force: bool) -> Result<()> {
    if !force && path.exists() {
        return Err(Error::Output {
            path: path.to_path_buf(),
            message: "already exists; pass --force to replace it".into(),
        });
    }
    Ok(())
}

/// A file being written next to its final place; `commit` renames it there. Dropped without
/// `commit`, the temporary file is removed and the target is untouched.
pub struct AtomicFile {
    target: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl AtomicFile {
    pub fn create(target: &Path, force: bool) -> Result<AtomicFile> {
        check_overwrite(target, force)?;
        let dir = parent_dir(target);
        let temp = tempfile::Builder::new()
            .prefix(".audience-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(target, e))?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            temp,
        })
    }

    pub fn file(&mut self) -> &mut std::fs::File {
        self.temp.as_file_mut()
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn commit(self, force: bool) -> Result<()> {
        // Checked again: the target may have appeared while we wrote.
        check_overwrite(&self.target, force)?;
        self.temp
            .as_file()
            .sync_all()
            .map_err(|e| Error::io(&self.target, e))?;
        self.temp
            .persist(&self.target)
            .map_err(|e| Error::io(&self.target, e.error))?;
        Ok(())
    }
}

/// Writes `bytes` to `target` atomically.
pub fn write_atomic(target: &Path, bytes: &[u8], force: bool) -> Result<()> {
    let mut file = AtomicFile::create(target, force)?;
    file.file()
        .write_all(bytes)
        .map_err(|e| Error::io(target, e))?;
    file.commit(force)
}

/// Replaces directory `target` with the finished directory `staged` (same parent): the old one,
/// if any and if allowed, is moved aside first and removed only after the new one is in place.
pub fn replace_dir(staged: &Path, target: &Path, force: bool) -> Result<()> {
    check_overwrite(target, force)?;
    if target.exists() {
        let aside = parent_dir(target).join(format!(
            ".audience-old-{}-{}",
            std::process::id(),
            target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        std::fs::rename(target, &aside).map_err(|e| Error::io(target, e))?;
        std::fs::rename(staged, target).map_err(|e| Error::io(target, e))?;
        let _ = std::fs::remove_dir_all(&aside);
    } else {
        std::fs::rename(staged, target).map_err(|e| Error::io(target, e))?;
    }
    Ok(())
}

/// The directory a file lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomic(&path, b"one", false).unwrap();
        assert!(write_atomic(&path, b"two", false).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_atomic(&path, b"two", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
    }

    #[test]
    fn dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        {
            let mut f = AtomicFile::create(&path, false).unwrap();
            f.file().write_all(b"partial").unwrap();
        }
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
