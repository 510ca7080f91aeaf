//! `audience`: does a LightGBM model pick a better campaign audience than hand-written SQL rules?
//!
//! Data flows one way through the modules below:
//! table ([`data`]) -> features ([`data::encode`]) -> model ([`model`]) -> scores -> metrics
//! ([`metrics`]) -> report ([`report`]). None of them knows about the command line.

pub mod compare;
pub mod config;
pub mod data;
pub mod describe;
pub mod error;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod output;
pub mod remote;
pub mod report;
pub mod rules;
pub mod sagemaker;
pub mod select;
pub mod split;
pub mod synth;

pub use error::{Error, Result};

/// The LightGBM version bundled by the lightgbm3-sys crate we build against (1.0.11 bundles 4.7.0).
/// Recorded in every model bundle; the C API has no call that reports it.
pub const LIGHTGBM_VERSION: &str = "4.7.0";
