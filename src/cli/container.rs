//! `audience container train`: the SageMaker training container's entry point.
//!
//! SageMaker runs the image as `docker run IMAGE train`; the Dockerfile's ENTRYPOINT is
//! `["audience", "container"]`, so this is what runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use audience::sagemaker::container::{OptMl, train_job};
use audience::sagemaker::serve::{ServeSettings, router};

pub const ABOUT: &str = "Run as a SageMaker container: train from /opt/ml, or serve the model";

pub const LONG_ABOUT: &str = "\
Run as a SageMaker bring-your-own-container image: `train` reads
/opt/ml/input/config/hyperparameters.json and the channels under /opt/ml/input/data, trains, and
writes the model bundle to /opt/ml/model. On failure the reason goes to /opt/ml/output/failure and
the exit code is non-zero. AUDIENCE_OPT_ML moves the /opt/ml root (for tests and local runs).

Channels: `train` (and optionally `validation`) holding CSV or Parquet files with the label column,
settings as hyperparameters (label, id, positive, negative, exclude, categorical, num_leaves,
num_rounds, learning_rate, early_stopping_rounds, test_fraction, seed; other keys go to LightGBM);
or the original example's x_train, y_train, x_test, y_test with tree_num_leaves and num_round.
Hyperparameter values may be plain or JSON-encoded strings.

`serve` answers GET /ping, GET /execution-parameters and POST /invocations on port 8080
(SAGEMAKER_BIND_TO_PORT) for the bundle in /opt/ml/model: text/csv (one record per line, columns
in the model's feature order or named by a header line) or application/jsonlines; exactly one
output line per record; SAGEMAKER_MAX_PAYLOAD_IN_MB (413 beyond it); 400 naming a malformed
record.";

pub const EXAMPLES: &str = "\
Examples:
  audience container train                       # inside the image, as SageMaker runs it
  AUDIENCE_OPT_ML=/tmp/opt_ml audience container train
  audience container serve                       # inside the image, as `docker run IMAGE serve`
  AUDIENCE_OPT_ML=/tmp/opt_ml audience container serve --host 127.0.0.1 --port 0";

#[derive(Debug, Args)]
pub struct ContainerArgs {
    #[command(subcommand)]
    pub command: ContainerCommand,
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Train from /opt/ml/input and write the model bundle to /opt/ml/model
    Train,
    /// Serve /ping, /execution-parameters and /invocations for the model in /opt/ml/model
    Serve {
        /// Address to listen on
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        /// Port [default: $SAGEMAKER_BIND_TO_PORT, else 8080]; 0 picks a free one
        #[arg(long)]
        port: Option<u16>,
    },
}

pub fn run(args: ContainerArgs) -> Result<()> {
    match args.command {
        ContainerCommand::Train => train(),
        ContainerCommand::Serve { host, port } => serve(&host, port),
    }
}

fn serve(host: &str, port: Option<u16>) -> Result<()> {
    let opt = OptMl::from_env();
    let port = match port {
        Some(p) => p,
        None => std::env::var("SAGEMAKER_BIND_TO_PORT")
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(8080),
    };
    let model = opt.model_dir();
    let bundle = audience::model::bundle::ModelBundle::load(&model, None)
        .with_context(|| format!("loading the model from {}", model.display()))?;
    // Compile the trees before answering /ping, so no request pays for it.
    bundle.compiled();
    let settings = ServeSettings::from_env();
    let app = router(bundle, settings.clone());
    audience::data::runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .with_context(|| format!("cannot listen on {host}:{port}"))?;
        let address = listener.local_addr()?;
        println!(
            "audience: serving on {address} (max payload {} MB, {})",
            settings.max_payload_bytes / (1024 * 1024),
            settings.batch_strategy
        );
        let listener =
            audience::sagemaker::serve::BoundedListener::new(listener, settings.read_timeout);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                // SageMaker stops a container with SIGTERM: finish the requests in flight.
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                eprintln!("audience: shutting down");
            })
            .await?;
        Ok(())
    })
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
            if opt
                .model_dir()
                .join(audience::model::bundle::MANIFEST_FILE)
                .exists()
            {
                println!(
                    "audience: model bundle written to {} ({} trees)",
                    opt.model_dir().display(),
                    run.manifest.best_iteration
                );
            }
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
