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
//! - Temporary files are removed when the run is interrupted (SIGINT, SIGTERM, SIGHUP).
//! - Outputs are created with the usual permissions (0666, 0777 for directories, less the umask).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::{Error, Result};

/// The bundle's two files (the only entries a directory `--force` may replace).
const BUNDLE_ENTRIES: [&str; 2] = ["model.txt", "audience-model.json"];

fn output_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Fails when `path` exists and `force` is false, and whenever it exists as anything but a
/// regular file: a device, a named pipe, a socket or a symbolic link is not something audience
/// wrote, and renaming a finished file over it would replace it (`/dev/null` itself, for root).
pub fn check_overwrite(path: &Path, force: bool) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.is_file() {
        return Err(output_error(
            path,
            format!(
                "is {}, not a file audience wrote: an output replaces only a regular file; choose another name",
                kind_of(&meta.file_type())
            ),
        ));
    }
    if !force {
        return Err(output_error(
            path,
            "already exists; pass --force to replace it",
        ));
    }
    Ok(())
}

/// What a directory entry that is not a regular file is, in words.
fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
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

/// Checks a file output before any work: not one of `inputs`, not a directory, in a folder that
/// exists, and replaceable (`check_overwrite`).
pub fn check_file_output(path: &Path, force: bool, inputs: &Inputs) -> Result<()> {
    check_file_target(path, force, inputs)?;
    let folder = parent_dir(path);
    match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(not_a_folder(path, folder)),
        Err(_) => Err(output_error(
            path,
            format!(
                "cannot be written: the folder {} does not exist",
                folder.display()
            ),
        )),
    }
}

/// As `check_file_output`, for a file in a folder the run creates when it is absent: the
/// folder, or the nearest of its ancestors that exists, must be a folder.
pub fn check_file_output_in_created_folder(
    path: &Path,
    force: bool,
    inputs: &Inputs,
) -> Result<()> {
    check_file_target(path, force, inputs)?;
    match parent_dir(path)
        .ancestors()
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .find_map(|a| std::fs::metadata(a).ok().map(|m| (a, m)))
    {
        Some((existing, m)) if !m.is_dir() => Err(not_a_folder(path, existing)),
        _ => Ok(()),
    }
}

fn not_a_folder(path: &Path, folder: &Path) -> Error {
    output_error(
        path,
        format!("cannot be written: {} is not a folder", folder.display()),
    )
}

/// The checks of a file output's own path (see `check_file_output`).
fn check_file_target(path: &Path, force: bool, inputs: &Inputs) -> Result<()> {
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

/// The temporary files and directories of a run, removed all at once if it is interrupted.
///
/// Creating a temporary and registering it is one step under the lock, and so is putting an
/// output in place (`commit`): otherwise an interruption arriving between the creation of a file
/// and its registration would leave it behind, and one arriving while a finished directory is
/// renamed into place could empty the target through its old name. Once removal has begun the
/// run is stopping: no temporary is created and no output is put in place after it.
pub struct Temporaries {
    state: Mutex<Registry>,
}

struct Registry {
    paths: Vec<PathBuf>,
    stopping: bool,
}

/// The process's temporaries (the signal watcher removes them).
static TEMPORARIES: Temporaries = Temporaries::new();

impl Temporaries {
    pub const fn new() -> Temporaries {
        Temporaries {
            state: Mutex::new(Registry {
                paths: Vec::new(),
                stopping: false,
            }),
        }
    }

    /// The registry, even if a thread panicked while holding it: the list stays valid (every
    /// change to it is a single push or removal).
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `create`, which makes a temporary file or directory, and registers the path `path_of`
    /// gives, as one step with respect to `remove_all`.
    pub fn create<T>(
        &'static self,
        create: impl FnOnce() -> std::io::Result<T>,
        path_of: impl FnOnce(&T) -> &Path,
    ) -> std::io::Result<(T, Temporary)> {
        let mut registry = self.lock();
        if registry.stopping {
            return Err(stopping());
        }
        let made = create()?;
        let path = path_of(&made).to_path_buf();
        registry.paths.push(path.clone());
        Ok((
            made,
            Temporary {
                path,
                registry: self,
            },
        ))
    }

    /// Runs `put_in_place` (the renames that put a finished output where it belongs) unless the
    /// run is stopping; removal waits for it to finish. It must not create or drop a `Temporary`
    /// (the registry is held).
    pub fn commit<R>(&self, put_in_place: impl FnOnce() -> R) -> std::io::Result<R> {
        let registry = self.lock();
        if registry.stopping {
            return Err(stopping());
        }
        let result = put_in_place();
        drop(registry);
        Ok(result)
    }

    /// Removes every registered temporary file and directory, and stops the run from creating
    /// more or putting outputs in place.
    pub fn remove_all(&self) {
        let mut registry = self.lock();
        registry.stopping = true;
        for p in registry.paths.drain(..) {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }

    fn unregister(&self, path: &Path) {
        let mut registry = self.lock();
        if let Some(i) = registry.paths.iter().position(|p| p == path) {
            registry.paths.swap_remove(i);
        }
    }
}

impl Default for Temporaries {
    fn default() -> Temporaries {
        Temporaries::new()
    }
}

impl std::fmt::Debug for Temporaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Temporaries")
    }
}

/// The error of a step refused because the run is being interrupted (not `ErrorKind::Interrupted`,
/// which writers retry).
fn stopping() -> std::io::Error {
    std::io::Error::other("the run was interrupted")
}

/// A registered temporary path (see `Temporaries::create`); unregistered when dropped.
#[derive(Debug)]
pub struct Temporary {
    path: PathBuf,
    registry: &'static Temporaries,
}

impl Drop for Temporary {
    fn drop(&mut self) {
        self.registry.unregister(&self.path);
    }
}

/// Removes every temporary file and directory of this run (on SIGINT or SIGTERM).
pub fn remove_temporaries() {
    TEMPORARIES.remove_all();
}

/// Registers a temporary made by `create` for removal on interruption (see `Temporaries::create`).
pub fn create_temporary<T>(
    create: impl FnOnce() -> std::io::Result<T>,
    path_of: impl FnOnce(&T) -> &Path,
) -> std::io::Result<(T, Temporary)> {
    TEMPORARIES.create(create, path_of)
}

/// On SIGINT, SIGTERM or SIGHUP: remove this run's temporary files, then exit with 128 + the
/// signal. A signal the caller set to be ignored stays ignored, as `nohup` (SIGHUP) and a shell
/// starting a background job (SIGINT) intend. (The SageMaker container handles its own signals
/// and does not call this.)
pub fn clean_up_on_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let watched: Vec<libc::c_int> = [SIGINT, SIGTERM, SIGHUP]
        .into_iter()
        .filter(|&signal| !is_ignored(signal))
        .collect();
    if watched.is_empty() {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new(watched)?;
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

/// Whether `signal` is set to be ignored (inherited from the caller: nothing in this process
/// sets that).
fn is_ignored(signal: libc::c_int) -> bool {
    // SAFETY: a query (no new action is given) into a zeroed `sigaction` owned here.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
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
    create_temporary(
        || {
            tempfile::Builder::new()
                .prefix(prefix)
                .suffix(".tmp")
                .permissions(std::fs::Permissions::from_mode(0o666))
                .tempfile_in(dir)
        },
        |file| file.path(),
    )
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
        let target = &self.target;
        let temp = self.temp;
        let persisted = TEMPORARIES
            .commit(|| {
                if force {
                    temp.persist(target)
                } else {
                    temp.persist_noclobber(target)
                }
            })
            .map_err(|e| Error::io(target, e))?;
        persisted.map_err(|e| {
            if !force && e.error.kind() == std::io::ErrorKind::AlreadyExists {
                output_error(
                    target,
                    "appeared while this run was writing it (another run?); pass --force to replace it",
                )
            } else {
                Error::io(target, e.error)
            }
        })?;
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
    create_temporary(
        || {
            tempfile::Builder::new()
                .prefix(".audience-model-")
                .permissions(std::fs::Permissions::from_mode(0o777))
                .tempdir_in(parent)
        },
        |dir| dir.path(),
    )
    .map_err(|e| Error::io(parent, e))
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
        let renamed = TEMPORARIES
            .commit(|| rename_new(staged, target))
            .map_err(|e| Error::io(target, e))?;
        return renamed.map_err(|e| {
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
    // Registered before it exists: an interruption before the swap finds nothing there (and the
    // old bundle still in place), one after it removes the old bundle the new one replaced.
    let (_, _registered) = create_temporary(|| Ok(aside.clone()), |p| p.as_path())
        .map_err(|e| Error::io(target, e))?;
    let swapped = TEMPORARIES
        .commit(|| -> Result<()> {
            std::fs::rename(target, &aside).map_err(|e| Error::io(target, e))?;
            if let Err(e) = rename_new(staged, target) {
                // Put the old bundle back rather than lose it.
                let _ = std::fs::rename(&aside, target);
                return Err(Error::io(target, e));
            }
            Ok(())
        })
        .map_err(|e| Error::io(target, e))?;
    swapped?;
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

    /// Entries of `dir`, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_interruption_while_a_temporary_is_being_created_still_removes_it() {
        static RUN: Temporaries = Temporaries::new();
        let dir = tempfile::tempdir().unwrap();
        let (started, creating) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        let creator = std::thread::spawn(move || {
            RUN.create(
                || {
                    started.send(()).unwrap();
                    // The signal arrives here, after the creation began and before it is done.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    tempfile::Builder::new().prefix(".t-").tempfile_in(&path)
                },
                |file| file.path(),
            )
        });
        creating.recv().unwrap();
        RUN.remove_all();
        let created = creator.join().unwrap().unwrap();
        assert_eq!(entries(dir.path()), Vec::<String>::new());
        drop(created);
    }

    #[test]
    fn once_removal_began_nothing_is_created_or_put_in_place() {
        static RUN: Temporaries = Temporaries::new();
        let dir = tempfile::tempdir().unwrap();
        let (file, _registered) = RUN
            .create(
                || tempfile::tempfile_in(dir.path()).map(|f| (f, dir.path().join("x"))),
                |(_, p)| p,
            )
            .unwrap();
        drop(file);
        RUN.remove_all();
        let mut called = false;
        assert!(
            RUN.create(
                || {
                    called = true;
                    tempfile::tempdir_in(dir.path())
                },
                |d| d.path()
            )
            .is_err()
        );
        assert!(!called, "nothing is created once the run is stopping");
        assert!(RUN.commit(|| called = true).is_err());
        assert!(
            !called,
            "no output is put in place once the run is stopping"
        );
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn removal_waits_for_an_output_being_put_in_place() {
        static RUN: Temporaries = Temporaries::new();
        let parent = tempfile::tempdir().unwrap();
        let (staged, _registered) = RUN
            .create(
                || {
                    tempfile::Builder::new()
                        .prefix(".staged-")
                        .tempdir_in(parent.path())
                },
                |d| d.path(),
            )
            .unwrap();
        for name in ["model.txt", "audience-model.json"] {
            std::fs::write(staged.path().join(name), name).unwrap();
        }
        let staged = staged.keep();
        let target = parent.path().join("model");
        let (started, committing) = std::sync::mpsc::channel();
        let (from, to) = (staged.clone(), target.clone());
        let committer = std::thread::spawn(move || {
            RUN.commit(|| {
                started.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(100));
                std::fs::rename(&from, &to)
            })
        });
        committing.recv().unwrap();
        RUN.remove_all();
        committer.join().unwrap().unwrap().unwrap();
        assert_eq!(entries(parent.path()), ["model"]);
        assert_eq!(entries(&target), ["audience-model.json", "model.txt"]);
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
    fn only_regular_files_are_replaced_and_the_folder_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("old.csv");
        std::fs::write(&file, "a").unwrap();
        check_file_output(&file, true, &Inputs::default()).unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let fifo = dir.path().join("fifo.csv");
        let c_fifo = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
        for (target, kind) in [
            (link.as_path(), "is a symbolic link"),
            (fifo.as_path(), "is a named pipe"),
            (Path::new("/dev/null"), "is a device"),
        ] {
            for force in [false, true] {
                let e = check_file_output(target, force, &Inputs::default())
                    .unwrap_err()
                    .to_string();
                assert!(e.contains(kind) && e.contains("choose another name"), "{e}");
                let e = AtomicFile::create(target, force).err().unwrap().to_string();
                assert!(e.contains(kind), "{e}");
            }
        }
        assert_eq!(std::fs::read(&file).unwrap(), b"a");
        let e = check_file_output(&dir.path().join("nodir/out.csv"), true, &Inputs::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("the folder") && e.contains("nodir"), "{e}");
        let e = check_file_output(&file.join("out.csv"), true, &Inputs::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a folder"), "{e}");
        // A folder the run creates: absent is fine, a file where a folder would go is not.
        let deep = dir.path().join("new/er/out.csv");
        check_file_output_in_created_folder(&deep, false, &Inputs::default()).unwrap();
        check_file_output_in_created_folder(Path::new("out.csv"), false, &Inputs::default())
            .unwrap();
        let e = check_file_output_in_created_folder(
            &file.join("er/out.csv"),
            false,
            &Inputs::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("old.csv is not a folder"), "{e}");
        let e = check_file_output_in_created_folder(&link, false, &Inputs::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
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
