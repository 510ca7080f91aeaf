//! Inputs and outputs in S3: `s3://bucket/key` wherever a table, a rule or an output file is
//! named.
//!
//! - An s3:// input is copied, streamed, to a private spool directory before it is read, so a
//!   remote table is sniffed, parsed in parallel byte ranges, checked and reported on exactly as
//!   a local one (the loader and its error positions need a file they can seek in). Errors and
//!   messages name the s3:// address, never the spool (see [`shown`]).
//! - A rule pattern such as `s3://bucket/rules/*.sql` lists the keys under its prefix and keeps
//!   those that match, in key order, as a local glob does.
//! - An s3:// output is written to the spool and uploaded only when the run has succeeded, so the
//!   object appears complete or not at all. Without `--force` an existing object is refused
//!   before any work and the upload is conditional (If-None-Match: *): of two runs writing one
//!   new object, exactly one succeeds. An output that is one of the run's s3:// inputs is refused.
//! - AWS configuration is the standard chain (environment, profiles, SSO, instance roles);
//!   AWS_ENDPOINT_URL points it at a compatible server such as moto.
//!
//! The spool is removed when the run ends, and on SIGINT or SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::output::Temporary;
use crate::{Error, Result};

/// An `s3://bucket/key` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    pub fn parse(text: &str) -> Result<S3Uri> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| Error::Config(format!("{text:?} is not an s3:// address")))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Config(format!("{text:?} names no bucket")));
        }
        Ok(S3Uri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// This address with `/part` appended.
    pub fn join(&self, part: &str) -> S3Uri {
        let key = if self.key.is_empty() || self.key.ends_with('/') {
            format!("{}{part}", self.key)
        } else {
            format!("{}/{part}", self.key)
        };
        S3Uri {
            bucket: self.bucket.clone(),
            key,
        }
    }
}

impl std::fmt::Display for S3Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Spool paths and the s3:// address each one stands for.
static NAMES: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());

/// Whether `path` names an object in S3.
pub fn is_s3(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("s3://"))
}

/// How a path is shown to the user: the s3:// address a spool file stands for, else the path.
pub fn shown(path: &Path) -> String {
    if let Ok(names) = NAMES.lock()
        && let Some((_, name)) = names.iter().find(|(p, _)| p == path)
    {
        return name.clone();
    }
    path.display().to_string()
}

fn register(path: &Path, name: &str) {
    if let Ok(mut names) = NAMES.lock() {
        names.push((path.to_path_buf(), name.to_string()));
    }
}

/// What is told each s3:// address as its copy starts.
type FetchNotice = dyn FnMut(&str);

/// An output to upload when the run has succeeded.
#[derive(Debug)]
struct Upload {
    local: PathBuf,
    name: String,
    #[cfg_attr(not(feature = "sagemaker"), allow(dead_code))]
    force: bool,
}

/// The s3:// files of one run: inputs fetched into the spool, outputs to upload at the end.
#[derive(Default)]
pub struct Remote {
    spool: Option<(tempfile::TempDir, Temporary)>,
    #[cfg(feature = "sagemaker")]
    aws: Option<crate::sagemaker::aws::Aws>,
    inputs: Vec<String>,
    uploads: Vec<Upload>,
    next: usize,
    /// Told each address as its copy starts (a large object takes a while).
    fetching: Option<Box<FetchNotice>>,
}

impl Remote {
    pub fn new() -> Remote {
        Remote::default()
    }

    /// Calls `tell` with each s3:// address as its copy starts.
    pub fn on_fetch(mut self, tell: impl FnMut(&str) + 'static) -> Remote {
        self.fetching = Some(Box::new(tell));
        self
    }

    /// A fresh directory in the spool for one file, which keeps its own name in it (a rule's
    /// name is its file's stem).
    fn slot(&mut self) -> Result<PathBuf> {
        if self.spool.is_none() {
            let spool = crate::output::create_temporary(
                || tempfile::Builder::new().prefix(".audience-s3-").tempdir(),
                |dir| dir.path(),
            )
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
            self.spool = Some(spool);
        }
        let (dir, _) = self.spool.as_ref().expect("made above");
        self.next += 1;
        let slot = dir.path().join(self.next.to_string());
        std::fs::create_dir(&slot).map_err(|e| Error::io(&slot, e))?;
        Ok(slot)
    }

    /// Notes that `path` will be read (before it is fetched), so no output may be it.
    pub fn expect_input(&mut self, path: &Path) {
        if is_s3(path) {
            self.inputs.push(path.to_string_lossy().into_owned());
        }
    }

    /// `path` itself when it is local; for an s3:// address, a local copy of the object.
    pub fn input(&mut self, path: &Path) -> Result<PathBuf> {
        if !is_s3(path) {
            return Ok(path.to_path_buf());
        }
        let name = path.to_string_lossy().into_owned();
        let local = self.fetch(&name)?;
        self.inputs.push(name);
        Ok(local)
    }

    /// Rule arguments: local ones as given (the rules module expands their globs), s3:// ones
    /// fetched, a pattern in the key matched against the keys under its prefix.
    pub fn rule_inputs(&mut self, args: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(args.len());
        for arg in args {
            if !is_s3(Path::new(arg)) {
                out.push(arg.clone());
                continue;
            }
            let names = self.matching(arg)?;
            for name in names {
                let local = self.fetch(&name)?;
                self.inputs.push(name);
                out.push(local.to_string_lossy().into_owned());
            }
        }
        Ok(out)
    }

    /// Where to write an s3:// output (a spool path, uploaded by [`Remote::finish`]), or `path`
    /// itself when it is local. An existing object is refused unless `force`; an output that is
    /// one of this run's inputs always is.
    pub fn output(&mut self, path: &Path, force: bool) -> Result<PathBuf> {
        if !is_s3(path) {
            return Ok(path.to_path_buf());
        }
        let name = path.to_string_lossy().into_owned();
        let uri = S3Uri::parse(&name)?;
        if uri.key.is_empty() || uri.key.ends_with('/') {
            return Err(output_error(
                &name,
                "names no object; give a key such as s3://bucket/report.json",
            ));
        }
        if self.inputs.contains(&name) || self.uploads.iter().any(|u| u.name == name) {
            return Err(output_error(
                &name,
                "is one of the inputs or outputs of this run: audience never writes over what it reads; choose another output",
            ));
        }
        if !force && self.exists(&uri)? {
            return Err(output_error(
                &name,
                "already exists; pass --force to replace it",
            ));
        }
        // Refused now rather than after the work: the upload would fail.
        if !self.bucket_exists(&uri)? {
            return Err(Error::io(
                &name,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such bucket"),
            ));
        }
        let file_name = uri.key.rsplit('/').next().unwrap_or("output");
        let local = self.slot()?.join(file_name);
        register(&local, &name);
        self.uploads.push(Upload {
            local: local.clone(),
            name,
            force,
        });
        Ok(local)
    }

    /// Uploads the outputs the run wrote (an output it did not write is skipped).
    pub fn finish(mut self) -> Result<()> {
        for upload in std::mem::take(&mut self.uploads) {
            if upload.local.exists() {
                self.upload(&upload)?;
            }
        }
        Ok(())
    }

    #[cfg(feature = "sagemaker")]
    fn aws(&mut self) -> Result<&crate::sagemaker::aws::Aws> {
        if self.aws.is_none() {
            let aws = crate::sagemaker::aws::Aws::connect(&Default::default())?;
            self.aws = Some(aws);
        }
        Ok(self.aws.as_ref().expect("set above"))
    }

    #[cfg(feature = "sagemaker")]
    fn fetch(&mut self, name: &str) -> Result<PathBuf> {
        let uri = S3Uri::parse(name)?;
        let file_name = uri
            .key
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                Error::Config(format!(
                    "{name}: names no object (a key ending in a file name)"
                ))
            })?
            .to_string();
        let local = self.slot()?.join(file_name);
        register(&local, name);
        if let Some(tell) = &mut self.fetching {
            tell(name);
        }
        self.aws()?.download(&uri, &local, false)?;
        Ok(local)
    }

    #[cfg(feature = "sagemaker")]
    fn matching(&mut self, pattern: &str) -> Result<Vec<String>> {
        let uri = S3Uri::parse(pattern)?;
        let Some(first) = uri.key.find(['*', '?', '[']) else {
            return Ok(vec![pattern.to_string()]);
        };
        let prefix = match uri.key[..first].rfind('/') {
            Some(slash) => &uri.key[..=slash],
            None => "",
        };
        let glob = glob::Pattern::new(&uri.key)
            .map_err(|e| Error::Config(format!("rule pattern {pattern:?}: {e}")))?;
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        let listed = self.aws()?.list(&S3Uri {
            bucket: uri.bucket.clone(),
            key: prefix.to_string(),
        })?;
        let names: Vec<String> = listed
            .into_iter()
            .filter(|k| glob.matches_with(&k.key, options))
            .map(|k| k.to_string())
            .collect();
        if names.is_empty() {
            return Err(Error::Config(format!(
                "rule pattern {pattern:?} matches no object"
            )));
        }
        Ok(names)
    }

    #[cfg(feature = "sagemaker")]
    fn exists(&mut self, uri: &S3Uri) -> Result<bool> {
        self.aws()?.exists(uri)
    }

    #[cfg(feature = "sagemaker")]
    fn bucket_exists(&mut self, uri: &S3Uri) -> Result<bool> {
        self.aws()?.bucket_exists(&uri.bucket)
    }

    #[cfg(feature = "sagemaker")]
    fn upload(&mut self, upload: &Upload) -> Result<()> {
        let uri = S3Uri::parse(&upload.name)?;
        self.aws()?.upload_new(&upload.local, &uri, upload.force)
    }

    #[cfg(not(feature = "sagemaker"))]
    fn fetch(&mut self, name: &str) -> Result<PathBuf> {
        Err(no_aws(name))
    }

    #[cfg(not(feature = "sagemaker"))]
    fn matching(&mut self, pattern: &str) -> Result<Vec<String>> {
        Err(no_aws(pattern))
    }

    #[cfg(not(feature = "sagemaker"))]
    fn exists(&mut self, uri: &S3Uri) -> Result<bool> {
        Err(no_aws(&uri.to_string()))
    }

    #[cfg(not(feature = "sagemaker"))]
    fn bucket_exists(&mut self, uri: &S3Uri) -> Result<bool> {
        Err(no_aws(&uri.to_string()))
    }

    #[cfg(not(feature = "sagemaker"))]
    fn upload(&mut self, upload: &Upload) -> Result<()> {
        Err(no_aws(&upload.name))
    }
}

#[cfg(not(feature = "sagemaker"))]
fn no_aws(name: &str) -> Error {
    Error::Config(format!(
        "{name}: this build of audience has no AWS support (built without the `sagemaker` feature)"
    ))
}

fn output_error(name: &str, message: &str) -> Error {
    Error::Output {
        path: name.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_pass_through_and_s3_addresses_are_recognised() {
        let mut remote = Remote::new();
        assert_eq!(
            remote.input(Path::new("data/history.csv")).unwrap(),
            PathBuf::from("data/history.csv")
        );
        assert_eq!(
            remote.rule_inputs(&["rules/*.sql".into()]).unwrap(),
            vec!["rules/*.sql".to_string()]
        );
        assert!(is_s3(Path::new("s3://bucket/key.csv")));
        assert!(!is_s3(Path::new("./s3:/bucket")));
        assert!(remote.spool.is_none(), "no spool without an s3:// file");
    }

    #[test]
    fn a_spool_file_is_shown_as_its_address() {
        let local = std::env::temp_dir().join("audience-shown-test/7/history.csv");
        register(&local, "s3://bucket/history.csv");
        assert_eq!(shown(&local), "s3://bucket/history.csv");
        assert_eq!(shown(Path::new("other.csv")), "other.csv");
    }
}
