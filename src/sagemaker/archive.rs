//! model.tar.gz: SageMaker tars the contents of /opt/ml/model at the end of a training job and
//! extracts the archive into /opt/ml/model before a transform job's container starts.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Component, Path};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::output::AtomicFile;
use crate::{Error, Result};

/// Tars the files of `dir` (paths relative to it, sorted, so identical models give identical
/// archives apart from file times) into a gzip archive written atomically at `archive`.
pub fn pack_dir(dir: &Path, archive: &Path, force: bool) -> Result<()> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut out = AtomicFile::create(archive, force)?;
    let encoder = GzEncoder::new(BufWriter::new(out.file()), Compression::default());
    let mut builder = tar::Builder::new(encoder);
    builder.mode(tar::HeaderMode::Deterministic);
    for relative in &files {
        let path = dir.join(relative);
        let mut file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        builder
            .append_file(relative, &mut file)
            .map_err(|e| Error::io(archive, e))?;
    }
    let encoder = builder.into_inner().map_err(|e| Error::io(archive, e))?;
    let writer = encoder.finish().map_err(|e| Error::io(archive, e))?;
    writer
        .into_inner()
        .map_err(|e| Error::io(archive, e.into_error()))?;
    out.commit(force)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// Extracts a model.tar.gz into `dir` (created if needed). Entries that would land outside
/// `dir` (absolute paths, `..`) and links are refused: the archive comes from a remote job.
pub fn unpack(archive: &Path, dir: &Path) -> Result<Vec<String>> {
    let file = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut names = Vec::new();
    let entries = tar.entries().map_err(|e| not_an_archive(archive, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not_an_archive(archive, e))?;
        let path = entry
            .path()
            .map_err(|e| not_an_archive(archive, e))?
            .into_owned();
        let safe = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !safe {
            return Err(Error::data(
                archive,
                format!(
                    "refusing the entry {}: outside the model folder",
                    path.display()
                ),
            ));
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                let target = dir.join(&path);
                std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let target = dir.join(&path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                let mut out = File::create(&target).map_err(|e| Error::io(&target, e))?;
                std::io::copy(&mut entry, &mut out).map_err(|e| Error::io(&target, e))?;
                names.push(path.to_string_lossy().into_owned());
            }
            other => {
                return Err(Error::data(
                    archive,
                    format!(
                        "refusing the entry {} of type {other:?}: a model archive holds files",
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(names)
}

fn not_an_archive(archive: &Path, e: std::io::Error) -> Error {
    Error::data(archive, format!("not a readable .tar.gz: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir_all(model.join("sub")).unwrap();
        std::fs::write(model.join("model.txt"), "tree\n").unwrap();
        std::fs::write(model.join("sub/extra.json"), "{}").unwrap();
        let archive = dir.path().join("model.tar.gz");
        pack_dir(&model, &archive, false).unwrap();
        // Not overwritten without force.
        assert!(pack_dir(&model, &archive, false).is_err());
        let again = dir.path().join("again.tar.gz");
        pack_dir(&model, &again, false).unwrap();
        assert_eq!(
            std::fs::read(&archive).unwrap(),
            std::fs::read(&again).unwrap(),
            "identical folders give identical archives"
        );
        let out = dir.path().join("out");
        let names = unpack(&archive, &out).unwrap();
        assert_eq!(names, vec!["model.txt", "sub/extra.json"]);
        assert_eq!(
            std::fs::read_to_string(out.join("model.txt")).unwrap(),
            "tree\n"
        );

        // An archive with a `..` entry is refused.
        let evil = dir.path().join("evil.tar.gz");
        {
            let file = File::create(&evil).unwrap();
            let mut b = tar::Builder::new(GzEncoder::new(file, Compression::default()));
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`, so write the name bytes directly.
            header.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../x.txt\0");
            header.set_cksum();
            b.append(&header, &b"x"[..]).unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let err = unpack(&evil, &dir.path().join("evil")).unwrap_err();
        assert!(
            err.to_string().contains("outside the model folder"),
            "{err}"
        );
        assert!(!dir.path().join("x.txt").exists());

        std::fs::write(dir.path().join("plain.txt"), "not gzip").unwrap();
        assert!(unpack(&dir.path().join("plain.txt"), &dir.path().join("p")).is_err());
    }
}
