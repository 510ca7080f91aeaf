//! `audience container train`: the SageMaker training container's entry point.
//!
//! SageMaker runs the image as `docker run IMAGE train`; the Dockerfile's ENTRYPOINT is
//! `["audience", "container"]`, so this is what runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::{Args, Subcommand};

use audience::sagemaker::container::{OptMl, train_job};

pub const ABOUT: &str = "Run as a SageMaker container (train from /opt/ml)";

pub const LONG_ABOUT: &str = "\
Run as a SageMaker bring-your-own-container image: `train` reads
/opt/ml/input/config/hyperparameters.json and the channels under /opt/ml/input/data, trains, and
writes the model bundle to /opt/ml/model. On failure the reason goes to /opt/ml/output/failure and
the exit code is non-zero. AUDIENCE_OPT_ML moves the /opt/ml root (for tests and local runs).

Channels: `train` (and optionally `validation`) holding CSV or Parquet files with the label column,
settings as hyperparameters (label, id, positive, negative, exclude, categorical, num_leaves,
num_rounds, learning_rate, early_stopping_rounds, test_fraction, seed; other keys go to LightGBM);
or the original example's x_train, y_train, x_test, y_test with tree_num_leaves and num_round.
Hyperparameter values may be plain or JSON-encoded strings.";

pub const EXAMPLES: &str = "\
Examples:
  audience container train                       # inside the image, as SageMaker runs it
  AUDIENCE_OPT_ML=/tmp/opt_ml audience container train";

#[derive(Debug, Args)]
pub struct ContainerArgs {
    #[command(subcommand)]
    pub command: ContainerCommand,
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Train from /opt/ml/input and write the model bundle to /opt/ml/model
    Train,
}

pub fn run(args: ContainerArgs) -> Result<()> {
    match args.command {
        ContainerCommand::Train => train(),
    }
}

fn train() -> Result<()> {
    let opt = OptMl::from_env();
    // SageMaker stops a job with SIGTERM (then SIGKILL 120 s later): finish the round, record
    // why, and exit non-zero.
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    eprintln!(
        "audience {}: SageMaker training in {}",
        env!("CARGO_PKG_VERSION"),
        opt.root.display()
    );
    let result = train_job(
        &opt,
        &mut |p| {
            if p.round % 10 == 0 || p.round == 1 {
                match p.early_stopping_auc {
                    Some(auc) => println!("round {}: early-stopping-auc: {auc:.6}", p.round),
                    None => println!("round {}", p.round),
                }
            }
            !stop.load(Ordering::Relaxed)
        },
        &mut |line| println!("{line}"),
    );
    match result {
        Ok(run) => {
            for note in &run.notes {
                eprintln!("note: {note}");
            }
            println!(
                "audience: model bundle written to {} ({} trees)",
                opt.model_dir().display(),
                run.manifest.best_iteration
            );
            Ok(())
        }
        Err(error) => {
            let message = if stop.load(Ordering::Relaxed) {
                format!("stopped by a termination signal: {error}")
            } else {
                error.to_string()
            };
            if let Err(e) = opt.write_failure(&message) {
                eprintln!("error: cannot write {}: {e}", opt.failure_file().display());
            }
            Err(anyhow::anyhow!(message))
        }
    }
}
