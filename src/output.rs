//! Writing outputs so that nothing is lost.
//!
//! - An output is written to a temporary file beside its target and put in place only once
//!   complete. Without `--force` it is put there by a create-new operation (a hard link, or a
//!   rename that refuses to replace), so of two runs writing one new output exactly one succeeds.
//! - `--force` replaces only what audience itself writes: a file output, or a directory that is a
//!   model bundle (nothing in it but `model.txt` and `audience-model.json`). A directory holding
//!   anything else is never replaced.
//! - An output that is one of the run's inputs (the same file by device and inode, through
//!   symlinks too) is an error, `--force` or not.
//! - Temporary files are removed when the run is interrupted (SIGINT, SIGTERM).
//! - Outputs are created with the usual permissions (0666, 0777 for directories, less the umask).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{Error, Result};

/// The bundle's two files (the only entries a directory `--force` may replace).
const BUNDLE_ENTRIES: [&str; 2] = ["model.txt", "audience-model.json"];

fn output_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Fails when `path` exists and `force` is false.
pub fn check_overwrite(path: &Path, force: bool) -> Result<()> {
    if !force && std::fs::symlink_metadata(path).is_ok() {
        return Err(output_error(
            path,
            "already exists; pass --force to replace it",
        ));
    }
    Ok(())
}

/// The files a run reads, by device and inode.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    files: Vec<(u64, u64, PathBuf)>,
}

impl Inputs {
    /// Adds `path` (a file, or every file of a directory such as a model bundle). Paths that do
    /// not exist are skipped: they cannot be overwritten.
    pub fn add(&mut self, path: &Path) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(path) {
                for entry in entries.flatten() {
                    if let Ok(m) = std::fs::metadata(entry.path())
                        && m.is_file()
                    {
                        self.files.push((m.dev(), m.ino(), entry.path()));
                    }
                }
            }
        } else {
            self.files
                .push((meta.dev(), meta.ino(), path.to_path_buf()));
        }
    }

    pub fn of<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Inputs {
        let mut inputs = Inputs::default();
        for p in paths {
            inputs.add(p);
        }
        inputs
    }

    /// The input that `path` is (the same file), if any.
    fn same_as(&self, path: &Path) -> Option<&Path> {
        let meta = std::fs::metadata(path).ok()?;
        self.files
            .iter()
            .find(|(dev, ino, _)| *dev == meta.dev() && *ino == meta.ino())
            .map(|(_, _, p)| p.as_path())
    }

    /// The first input inside directory `dir` (at any depth), if any.
    fn inside(&self, dir: &Path) -> Option<&Path> {
        let dir = std::fs::canonicalize(dir).ok()?;
        self.files
            .iter()
            .find(|(_, _, p)| std::fs::canonicalize(p).is_ok_and(|p| p.starts_with(&dir)))
            .map(|(_, _, p)| p.as_path())
    }
}

/// Checks an output file before any work: not an input, not a directory, and new unless `force`.
pub fn check_file_output(path: &Path, force: bool, inputs: &Inputs) -> Result<()> {
    if let Some(input) = inputs.same_as(path) {
        return Err(output_error(
            path,
            format!(
                "is one of the inputs ({}): audience never writes over what it reads; choose another output",
                input.display()
            ),
        ));
    }
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(output_error(path, "is a directory; name a file to write"));
    }
    check_overwrite(path, force)
}

/// Checks a bundle directory before any work: new, or (with `force`) a bundle audience wrote,
/// holding no input.
pub fn check_bundle_output(dir: &Path, force: bool, inputs: &Inputs) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return Ok(());
    };
    if !force {
        return Err(output_error(
            dir,
            "already exists; pass --force to replace it",
        ));
    }
    if !meta.is_dir() {
        return Err(output_error(
            dir,
            "is not a directory: a model bundle is written as a directory; choose another name",
        ));
    }
    if let Some(input) = inputs.inside(dir) {
        return Err(output_error(
            dir,
            format!(
                "holds one of the inputs ({}): audience never replaces what it reads",
                input.display()
            ),
        ));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || !BUNDLE_ENTRIES.iter().any(|b| name == *b) {
            return Err(output_error(
                dir,
                format!(
                    "is not a model bundle (it holds {:?}): --force replaces only a bundle audience wrote; choose another directory",
                    name
                ),
            ));
        }
    }
    Ok(())
}

/// Temporary files and directories of this run, removed if it is interrupted.
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary path registered for removal on interruption; unregistered when dropped.
#[derive(Debug)]
pub struct Temporary(PathBuf);

impl Temporary {
    pub fn register(path: &Path) -> Temporary {
        if let Ok(mut all) = TEMPORARIES.lock() {
            all.push(path.to_path_buf());
        }
        Temporary(path.to_path_buf())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Ok(mut all) = TEMPORARIES.lock()
            && let Some(i) = all.iter().position(|p| *p == self.0)
        {
            all.swap_remove(i);
        }
    }
}

/// Removes every registered temporary file and directory (on SIGINT or SIGTERM).
pub fn remove_temporaries() {
    if let Ok(all) = TEMPORARIES.lock() {
        for p in all.iter() {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// On SIGINT or SIGTERM: remove this run's temporary files, then exit with 128 + the signal.
/// (The SageMaker container handles its own signals and does not call this.)
pub fn clean_up_on_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                remove_temporaries();
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

/// A temporary file beside `target`, created with the usual permissions, registered for
/// removal on interruption.
pub fn temporary_file_beside(
    target: &Path,
    prefix: &str,
) -> Result<(tempfile::NamedTempFile, Temporary)> {
    temporary_file_in(parent_dir(target), prefix).map_err(|e| Error::io(target, e))
}

/// A temporary file in `dir` (see `temporary_file_beside`).
pub fn temporary_file_in(
    dir: &Path,
    prefix: &str,
) -> std::io::Result<(tempfile::NamedTempFile, Temporary)> {
    let file = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    let registered = Temporary::register(file.path());
    Ok((file, registered))
}

/// Bytes written once, in order, and read back (whole, any number of times): held in memory up
/// to `limit` bytes, past that in a temporary file in the directory given (created up front,
/// so that a directory that cannot take it fails before the work; written only when needed).
/// Small inputs then never touch the disk; large ones stay bounded in memory.
pub struct SpillBuffer {
    file: tempfile::NamedTempFile,
    _registered: Temporary,
    limit: usize,
    memory: Vec<u8>,
    /// Open once the bytes outgrew `limit`; every byte is then in the file.
    writer: Option<std::io::BufWriter<std::fs::File>>,
}

impl SpillBuffer {
    pub fn new_in(dir: &Path, prefix: &str, limit: usize) -> std::io::Result<SpillBuffer> {
        let (file, registered) = temporary_file_in(dir, prefix)?;
        Ok(SpillBuffer {
            file,
            _registered: registered,
            limit,
            memory: Vec::new(),
            writer: None,
        })
    }

    /// The temporary file (named in errors, whether or not the bytes reached it).
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Whether the bytes outgrew memory.
    pub fn spilled(&self) -> bool {
        self.writer.is_some()
    }

    /// Every byte written so far, from the first.
    pub fn reader(&mut self) -> std::io::Result<SpillReader<'_>> {
        Ok(match &mut self.writer {
            Some(writer) => {
                writer.flush()?;
                SpillReader::File(std::io::BufReader::with_capacity(
                    1 << 20,
                    self.file.reopen()?,
                ))
            }
            None => SpillReader::Memory(&self.memory),
        })
    }
}

impl Write for SpillBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.writer.is_none() && self.memory.len() + bytes.len() > self.limit {
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, self.file.reopen()?);
            writer.write_all(&self.memory)?;
            self.memory = Vec::new();
            self.writer = Some(writer);
        }
        match &mut self.writer {
            Some(writer) => writer.write(bytes),
            None => {
                self.memory.extend_from_slice(bytes);
                Ok(bytes.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.writer {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }
}

/// A `SpillBuffer`'s bytes from the first: from memory, or from its file.
pub enum SpillReader<'a> {
    Memory(&'a [u8]),
    File(std::io::BufReader<std::fs::File>),
}

impl std::io::Read for SpillReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        match self {
            SpillReader::Memory(bytes) => std::io::Read::read(bytes, out),
            SpillReader::File(file) => std::io::Read::read(file, out),
        }
    }
}

impl std::io::BufRead for SpillReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        match self {
            SpillReader::Memory(bytes) => Ok(bytes),
            SpillReader::File(file) => std::io::BufRead::fill_buf(file),
        }
    }

    fn consume(&mut self, n: usize) {
        match self {
            SpillReader::Memory(bytes) => *bytes = &bytes[n..],
            SpillReader::File(file) => std::io::BufRead::consume(file, n),
        }
    }
}

/// A file being written next to its final place; `commit` puts it there. Dropped without
/// `commit`, the temporary file is removed and the target is untouched.
pub struct AtomicFile {
    target: PathBuf,
    temp: tempfile::NamedTempFile,
    _registered: Temporary,
}

impl AtomicFile {
    pub fn create(target: &Path, force: bool) -> Result<AtomicFile> {
        check_overwrite(target, force)?;
        let (temp, registered) = temporary_file_beside(target, ".audience-")?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            temp,
            _registered: registered,
        })
    }

    pub fn file(&mut self) -> &mut std::fs::File {
        self.temp.as_file_mut()
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Starts writing what has been written so far to the disk, without waiting, so that
    /// `commit`'s sync waits only for the last bytes instead of all of them. Only a hint:
    /// where the system has no such call, or refuses it, `commit` syncs everything as before.
    pub fn start_writeback(&self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor is open for as long as `self.temp` is; offset 0 and
            // length 0 name the whole file; the call only schedules writes of its pages.
            unsafe {
                libc::sync_file_range(
                    self.temp.as_file().as_raw_fd(),
                    0,
                    0,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
    }

    /// Puts the file in place: over an existing target only with `force`; otherwise only if
    /// nothing has appeared there meanwhile (atomically: a concurrent run's file is never
    /// replaced).
    pub fn commit(self, force: bool) -> Result<()> {
        self.temp
            .as_file()
            .sync_all()
            .map_err(|e| Error::io(&self.target, e))?;
        if force {
            self.temp
                .persist(&self.target)
                .map_err(|e| Error::io(&self.target, e.error))?;
        } else {
            self.temp.persist_noclobber(&self.target).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    output_error(
                        &self.target,
                        "appeared while this run was writing it (another run?); pass --force to replace it",
                    )
                } else {
                    Error::io(&self.target, e.error)
                }
            })?;
        }
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

/// A temporary directory beside `target` for assembling a bundle (registered for removal).
pub fn staging_dir_beside(target: &Path) -> Result<(tempfile::TempDir, Temporary)> {
    let parent = parent_dir(target);
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let dir = tempfile::Builder::new()
        .prefix(".audience-model-")
        .permissions(std::fs::Permissions::from_mode(0o777))
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    let registered = Temporary::register(dir.path());
    Ok((dir, registered))
}

/// Renames `from` to `to` unless `to` exists, atomically where the system can
/// (`renameat2(RENAME_NOREPLACE)` on Linux).
fn rename_new(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let from_c = CString::new(from.as_os_str().as_bytes())?;
        let to_c = CString::new(to.as_os_str().as_bytes())?;
        // SAFETY: two NUL-terminated paths, relative to the working directory.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from_c.as_ptr(),
                libc::AT_FDCWD,
                to_c.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        // Filesystems without RENAME_NOREPLACE: fall back to check-then-rename below.
        if !matches!(
            error.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::ENOSYS)
        ) {
            return Err(error);
        }
    }
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
    }
    std::fs::rename(from, to)
}

/// Replaces directory `target` with the finished directory `staged` (same parent). A new target
/// is created atomically (never over one that appeared meanwhile); an existing one is replaced
/// only with `force` and only when it is a bundle (`check_bundle_output`): it is moved aside
/// first and removed only after the new one is in place.
pub fn replace_dir(staged: &Path, target: &Path, force: bool) -> Result<()> {
    if std::fs::symlink_metadata(target).is_err() {
        return rename_new(staged, target).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                output_error(
                    target,
                    "appeared while this run was writing it (another run?); pass --force to replace it",
                )
            } else {
                Error::io(target, e)
            }
        });
    }
    check_bundle_output(target, force, &Inputs::default())?;
    let aside = parent_dir(target).join(format!(
        ".audience-old-{}-{}",
        std::process::id(),
        target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _registered = Temporary::register(&aside);
    std::fs::rename(target, &aside).map_err(|e| Error::io(target, e))?;
    if let Err(e) = rename_new(staged, target) {
        // Put the old bundle back rather than lose it.
        let _ = std::fs::rename(&aside, target);
        return Err(Error::io(target, e));
    }
    let _ = std::fs::remove_dir_all(&aside);
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
    fn a_file_that_appears_meanwhile_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let mut mine = AtomicFile::create(&path, false).unwrap();
        mine.file().write_all(b"mine").unwrap();
        std::fs::write(&path, b"theirs").unwrap();
        let e = mine.commit(false).unwrap_err().to_string();
        assert!(e.contains("appeared while this run was writing it"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn spilled_bytes_read_back_whole_from_memory_or_the_file() {
        use std::io::{BufRead, Read};
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for (limit, spills) in [(10_000, false), (9_999, true), (0, true)] {
            let mut buffer = SpillBuffer::new_in(dir.path(), ".spill-", limit).unwrap();
            assert!(buffer.path().exists(), "the file is made up front");
            for piece in bytes.chunks(333) {
                buffer.write_all(piece).unwrap();
            }
            assert_eq!(buffer.spilled(), spills, "limit {limit}");
            // Read back twice, by `read` and by `fill_buf`/`consume`.
            let mut back = Vec::new();
            buffer.reader().unwrap().read_to_end(&mut back).unwrap();
            assert_eq!(back, bytes, "limit {limit}");
            let mut reader = buffer.reader().unwrap();
            let mut back = Vec::new();
            loop {
                let chunk = reader.fill_buf().unwrap();
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len().min(1000);
                back.extend_from_slice(&chunk[..n]);
                reader.consume(n);
            }
            assert_eq!(back, bytes, "limit {limit}");
            // Reading flushed whatever a spilled buffer still held.
            let on_disk = std::fs::metadata(buffer.path()).unwrap().len();
            assert_eq!(on_disk, if spills { 10_000 } else { 0 }, "limit {limit}");
            let path = buffer.path().to_path_buf();
            drop(buffer);
            assert!(!path.exists(), "the file goes with the buffer");
        }
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

    #[test]
    fn only_bundles_are_replaced_and_inputs_never() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("model");
        std::fs::create_dir(&bundle).unwrap();
        std::fs::write(bundle.join("model.txt"), "x").unwrap();
        std::fs::write(bundle.join("audience-model.json"), "{}").unwrap();
        let none = Inputs::default();
        check_bundle_output(&bundle, true, &none).unwrap();
        assert!(check_bundle_output(&bundle, false, &none).is_err());
        std::fs::write(bundle.join("history.csv"), "a").unwrap();
        let e = check_bundle_output(&bundle, true, &none)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is not a model bundle") && e.contains("history.csv"),
            "{e}"
        );
        std::fs::remove_file(bundle.join("history.csv")).unwrap();
        let inputs = Inputs::of([bundle.join("model.txt").as_path()]);
        let e = check_bundle_output(&bundle, true, &inputs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds one of the inputs"), "{e}");
        // A file output that is an input, through a symlink too.
        let data = dir.path().join("data.csv");
        std::fs::write(&data, "a").unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        let inputs = Inputs::of([data.as_path()]);
        for target in [&data, &link] {
            let e = check_file_output(target, true, &inputs)
                .unwrap_err()
                .to_string();
            assert!(e.contains("is one of the inputs"), "{e}");
        }
        check_file_output(&dir.path().join("new.csv"), false, &inputs).unwrap();
    }

    #[test]
    fn outputs_get_the_usual_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        write_atomic(&path, b"x", false).unwrap();
        // SAFETY: reading the umask by setting it and restoring it at once.
        let umask = unsafe {
            let old = libc::umask(0o022);
            libc::umask(old);
            old
        };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !(umask as u32));
    }
}
