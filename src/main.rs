//! The `audience` command line: parses arguments and hands each subcommand to its module in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
Start here:
  audience compare rules/*.sql      # do the rules or the model pick better audiences?
  audience train                    # write the model bundle to model/
  audience score --data candidates.csv --out scores.csv

Settings come from ./audience.toml (or --config); every setting is also a flag, and flags win.";

#[derive(Debug, Parser)]
#[command(
    name = "audience",
    version,
    about = "Shows, with honest numbers, whether a LightGBM model picks better campaign audiences than your SQL rules",
    after_help = AFTER_HELP,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(about = cli::train::ABOUT, long_about = cli::train::LONG_ABOUT, after_help = cli::train::EXAMPLES)]
    Train(cli::train::TrainArgs),
    #[command(about = cli::score::ABOUT, long_about = cli::score::LONG_ABOUT, after_help = cli::score::EXAMPLES)]
    Score(cli::score::ScoreArgs),
    #[command(about = cli::compare::ABOUT, long_about = cli::compare::LONG_ABOUT, after_help = cli::compare::EXAMPLES)]
    Compare(cli::compare::CompareArgs),
    #[command(about = cli::synth::ABOUT, long_about = cli::synth::LONG_ABOUT, after_help = cli::synth::EXAMPLES)]
    Synth(cli::synth::SynthArgs),
    #[command(about = cli::container::ABOUT, long_about = cli::container::LONG_ABOUT, after_help = cli::container::EXAMPLES)]
    #[command(about = cli::sagemaker::ABOUT, long_about = cli::sagemaker::LONG_ABOUT, after_help = cli::sagemaker::EXAMPLES)]
    Sagemaker(cli::sagemaker::SagemakerArgs),
    #[command(about = cli::container::ABOUT, long_about = cli::container::LONG_ABOUT, after_help = cli::container::EXAMPLES)]
    Container(cli::container::ContainerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => cli::train::run(args),
        Command::Score(args) => cli::score::run(args),
        Command::Compare(args) => cli::compare::run(args),
        Command::Synth(args) => cli::synth::run(args),
        Command::Sagemaker(args) => cli::sagemaker::run(args),
        Command::Container(args) => cli::container::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
