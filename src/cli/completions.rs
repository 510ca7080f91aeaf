//! `audience completions SHELL` and `audience man`: shell completions and the manual page,
//! generated from the same argument definitions the parser uses, so they never drift.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

pub const COMPLETIONS_ABOUT: &str = "Print shell completions (bash, zsh, fish, elvish, powershell)";

pub const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  audience completions bash > ~/.local/share/bash-completion/completions/audience
  audience completions zsh > ~/.zfunc/_audience
  audience completions fish > ~/.config/fish/completions/audience.fish";

pub const MAN_ABOUT: &str = "Write the manual pages (roff): audience.1 and one per subcommand";

pub const MAN_EXAMPLES: &str = "\
Examples:
  audience man | man -l -                 # read the main page now
  audience man --output man/ && man -l man/audience-compare.1";

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write audience.1 and audience-<subcommand>.1 into this directory instead of printing
    /// audience.1
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Replace pages already in the directory
    #[arg(long)]
    pub force: bool,
}

pub fn completions(args: CompletionsArgs, mut command: clap::Command) -> Result<()> {
    let name = command.get_name().to_string();
    // Into a buffer first: the generator panics when it cannot write (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
    Ok(())
}

pub fn man(args: ManArgs, command: clap::Command) -> Result<()> {
    let render = |command: clap::Command, title: &str| -> Result<Vec<u8>> {
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .title(title.to_uppercase())
            .render(&mut page)
            .context("rendering the manual page")?;
        Ok(page)
    };
    match &args.output {
        None => {
            std::io::Write::write_all(
                &mut std::io::stdout().lock(),
                &render(command, "audience")?,
            )?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create the directory", dir.display()))?;
            let command = command.clone().build_for_man();
            let mut pages = vec![(dir.join("audience.1"), render(command.clone(), "audience")?)];
            for sub in command
                .get_subcommands()
                .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            {
                let name = format!("audience-{}", sub.get_name());
                pages.push((dir.join(format!("{name}.1")), render(sub.clone(), &name)?));
            }
            for (path, _) in &pages {
                audience::output::check_overwrite(path, args.force)?;
            }
            for (path, page) in &pages {
                audience::output::write_atomic(path, page, args.force)?;
            }
            eprintln!("Wrote {} manual pages to {}", pages.len(), dir.display());
        }
    }
    Ok(())
}

/// `build_for_man`: the command built (so subcommands carry their arguments) before rendering.
trait BuildForMan {
    fn build_for_man(self) -> Self;
}

impl BuildForMan for clap::Command {
    fn build_for_man(mut self) -> Self {
        self.build();
        self
    }
}
