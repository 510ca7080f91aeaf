//! The `audience` command line: parses arguments and hands each subcommand to its module in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

const AFTER_HELP: &str = "\
Start here:
  audience compare rules/*.sql      # do the rules or the model pick better audiences?
  audience train                    # write the model bundle to model/
  audience score --data candidates.csv --output scores.csv
  audience select rules/young_professionals.sql --data candidates.csv --output audience.csv

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
    #[command(about = cli::select::ABOUT, long_about = cli::select::LONG_ABOUT, after_help = cli::select::EXAMPLES)]
    Select(cli::select::SelectArgs),
    #[command(about = cli::columns::ABOUT, long_about = cli::columns::LONG_ABOUT, after_help = cli::columns::EXAMPLES)]
    Columns(cli::columns::ColumnsArgs),
    #[command(about = cli::init::ABOUT, long_about = cli::init::LONG_ABOUT, after_help = cli::init::EXAMPLES)]
    Init(cli::init::InitArgs),
    #[command(about = cli::synth::ABOUT, long_about = cli::synth::LONG_ABOUT, after_help = cli::synth::EXAMPLES)]
    Synth(cli::synth::SynthArgs),
    #[command(about = cli::sagemaker::ABOUT, long_about = cli::sagemaker::LONG_ABOUT, after_help = cli::sagemaker::EXAMPLES)]
    Sagemaker(cli::sagemaker::SagemakerArgs),
    #[command(about = cli::container::ABOUT, long_about = cli::container::LONG_ABOUT, after_help = cli::container::EXAMPLES)]
    Container(cli::container::ContainerArgs),
    #[command(about = cli::completions::COMPLETIONS_ABOUT, after_help = cli::completions::COMPLETIONS_EXAMPLES)]
    Completions(cli::completions::CompletionsArgs),
    #[command(about = cli::completions::MAN_ABOUT, after_help = cli::completions::MAN_EXAMPLES)]
    Man(cli::completions::ManArgs),
}

/// The command runs on a thread with this stack: SQL rules are checked, planned and optimised by
/// recursive code (sqlparser's visitor, DataFusion's planner), and a generated rule of thousands
/// of terms is deep. Only the pages used are committed.
const MAIN_STACK_BYTES: usize = 256 << 20;

fn main() -> ExitCode {
    spin_less_between_boosting_rounds();
    match std::thread::Builder::new()
        .name("audience".into())
        .stack_size(MAIN_STACK_BYTES)
        .spawn(run)
        .map(|thread| thread.join())
    {
        Ok(Ok(code)) => code,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The subcommands that may train with LightGBM (`sagemaker` and `container` run training jobs
/// in this process).
const TRAINING_COMMANDS: [&str; 4] = ["train", "compare", "sagemaker", "container"];

/// The spin count given to LightGBM's OpenMP threads (GNU libgomp's GOMP_SPINCOUNT).
const OPENMP_SPINCOUNT: &str = "10000";

/// LightGBM's OpenMP threads, each time a parallel region ends, busy-wait for libgomp's default
/// of 300,000 spins before they sleep. Between two boosting rounds audience's own threads add the
/// new tree to the early-stopping rows and count their AUC, and those spinning threads held the
/// very cores they needed (bench/RESULTS.md). With fewer spins they still catch the next region
/// of the same round, which follows within microseconds, and leave the cores soon after it.
/// libgomp reads the setting once, as it is loaded, before `main`: so a training command runs
/// itself again with it set, unless the user has chosen a wait policy. Where the new run cannot
/// start, this one goes on as it was.
fn spin_less_between_boosting_rounds() {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let (Some(program), Some(command)) = (args.next(), args.next()) else {
        return;
    };
    let set = |name: &str| std::env::var_os(name).is_some();
    if !needs_spin_setting(
        command.to_str(),
        set("GOMP_SPINCOUNT") || set("OMP_WAIT_POLICY"),
    ) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // exec returns only when it failed.
    let _ = std::process::Command::new(exe)
        .arg0(program)
        .arg(command)
        .args(args)
        .env("GOMP_SPINCOUNT", OPENMP_SPINCOUNT)
        .exec();
}

/// Whether a run of `command` should set LightGBM's spin count: a training command, with no wait
/// policy chosen by the user (which also ends the recursion: the new run has one).
fn needs_spin_setting(command: Option<&str>, policy_chosen: bool) -> bool {
    !policy_chosen && command.is_some_and(|c| TRAINING_COMMANDS.contains(&c))
}

fn run() -> ExitCode {
    let cli = Cli::parse();
    // An interrupted run leaves no temporary files behind. The container handles its own
    // signals (training stops after the current round, the server drains).
    if !matches!(cli.command, Command::Container(_))
        && let Err(e) = audience::output::clean_up_on_signals()
    {
        eprintln!("warning: cannot watch for interruptions: {e}");
    }
    let result = match cli.command {
        Command::Train(args) => cli::train::run(args),
        Command::Score(args) => cli::score::run(args),
        Command::Compare(args) => cli::compare::run(args),
        Command::Select(args) => cli::select::run(args),
        Command::Columns(args) => cli::columns::run(args),
        Command::Init(args) => cli::init::run(args),
        Command::Synth(args) => cli::synth::run(args),
        Command::Sagemaker(args) => cli::sagemaker::run(args),
        Command::Container(args) => cli::container::run(args),
        Command::Completions(args) => cli::completions::completions(args, Cli::command()),
        Command::Man(args) => cli::completions::man(args, Cli::command()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of standard output went away (`audience compare | head`): nothing is
        // wrong, there is just no one left to tell; end quietly, as ripgrep does.
        Err(error) if closed_stdout(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::from(exit_code(&error))
        }
    }
}

/// Exit codes: 0 done; 2 the input was refused (a usage error, as clap exits, or a setting,
/// table, rule, model file or output the user gave); 1 anything else (the system, LightGBM,
/// AWS).
fn exit_code(error: &anyhow::Error) -> u8 {
    if let Some(e) = error
        .chain()
        .find_map(|c| c.downcast_ref::<audience::Error>())
    {
        return if e.is_bad_input() { 2 } else { 1 };
    }
    // The command line's own checks (`--share must be in (0, 1]`) are usage errors; an
    // operating-system error that reached here unwrapped is not.
    if error
        .chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some())
    {
        1
    } else {
        2
    }
}

fn closed_stdout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error as one line: each context, down to the first of audience's own errors, whose
/// message already says what its cause means (the cause stays attached for programs).
fn one_line(error: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in error.chain() {
        parts.push(cause.to_string());
        if cause.downcast_ref::<audience::Error>().is_some() {
            break;
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_training_commands_without_a_chosen_wait_policy_set_the_spin_count() {
        for command in TRAINING_COMMANDS {
            assert!(needs_spin_setting(Some(command), false), "{command}");
            assert!(!needs_spin_setting(Some(command), true), "{command}");
        }
        for command in ["score", "select", "columns", "--help", "--version", "Train"] {
            assert!(!needs_spin_setting(Some(command), false), "{command}");
        }
        assert!(!needs_spin_setting(None, false));
    }

    #[test]
    fn every_training_command_is_a_subcommand() {
        let cli = Cli::command();
        for command in TRAINING_COMMANDS {
            assert!(cli.find_subcommand(command).is_some(), "{command}");
        }
    }
}
