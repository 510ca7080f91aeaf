//! The library's error type: every variant says what went wrong and where (file, line, rule).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem with the configuration file or a setting.
    #[error("{0}")]
    Config(String),

    /// A problem with an input table: missing column, bad label, duplicate id, unreadable file.
    #[error("{}: {message}", crate::remote::shown(path))]
    Data { path: PathBuf, message: String },

    /// A rule that does not parse, is not a read-only SELECT, or fails to run.
    #[error("{location}: {message}")]
    Rule { location: String, message: String },

    /// Several independent problems found together (every broken rule at once), one per line.
    #[error("{}", many_lines(.0))]
    Many(Vec<Error>),

    /// A model bundle that is missing, malformed, or does not fit the data.
    #[error("{}: {message}", crate::remote::shown(path))]
    Model { path: PathBuf, message: String },

    /// LightGBM reported an error through its C API.
    #[error("LightGBM: {0}")]
    LightGbm(String),

    /// Work interrupted on request (a termination signal).
    #[error("{0}")]
    Stopped(String),

    /// An AWS call failed (SageMaker or S3): what was being done and AWS's own code and message.
    #[error("{0}")]
    Aws(String),

    /// An output file exists and `--force` was not given, or cannot be written.
    #[error("{}: {message}", crate::remote::shown(path))]
    Output { path: PathBuf, message: String },

    /// The operating system's error, kept as the cause.
    #[error("{}: {source}", crate::remote::shown(path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// DataFusion (or Arrow beneath it) failed on a table: the message a user reads, and the
    /// error itself as the cause.
    #[error("{}: {message}", crate::remote::shown(path))]
    DataFusion {
        path: PathBuf,
        message: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
}

fn many_lines(errors: &[Error]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    format!("{} problems:\n{}", errors.len(), lines.join("\n"))
}

impl Error {
    /// Whether the error is in what the user gave (configuration, data, rules, a model file, an
    /// output that may not be replaced), as opposed to a failure of the machine or a service.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Config(_)
            | Error::Data { .. }
            | Error::Rule { .. }
            | Error::Model { .. }
            | Error::Output { .. }
            | Error::DataFusion { .. } => true,
            Error::Many(errors) => errors.iter().all(Error::is_bad_input),
            // A path that is not there or may not be read was given by the user; a disk that
            // fills up or fails was not.
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::IsADirectory
                    | std::io::ErrorKind::NotADirectory
                    | std::io::ErrorKind::InvalidData
            ),
            Error::LightGbm(_) | Error::Stopped(_) | Error::Aws(_) => false,
        }
    }

    /// One error as itself, several as `Many`, none as None.
    pub fn all(mut errors: Vec<Error>) -> Option<Error> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(Error::Many(errors)),
        }
    }

    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Model {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A DataFusion error on the table at `path`, its message taken from the innermost error.
    pub fn datafusion(
        path: impl Into<PathBuf>,
        source: datafusion::error::DataFusionError,
    ) -> Self {
        Error::DataFusion {
            path: path.into(),
            message: crate::data::datafusion_message(&source),
            source,
        }
    }
}
