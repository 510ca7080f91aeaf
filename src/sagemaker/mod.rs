//! Amazon SageMaker: the container side (train from /opt/ml, serve) of a bring-your-own-container
//! job, the jobs themselves (`job`), and two ways to run them: on AWS through the SDK (`aws`,
//! behind the `sagemaker` cargo feature) and on this machine exactly as SageMaker would (`local`).

pub mod archive;
#[cfg(feature = "sagemaker")]
pub mod aws;
pub mod container;
pub mod dataprocessing;
pub mod job;
pub mod local;
pub mod serve;
