//! `cmarchive man [DIR]`: the man pages, rendered from the same clap definition as `--help`, so the two cannot
//! disagree. The release archives carry them (scripts/dist).

use crate::cli::{Cli, ManArgs};
use crate::error::{CliError, Result};
use clap::CommandFactory;

/// Prints cmarchive(1), or writes a page per command into the folder.
pub fn run(args: &ManArgs) -> Result<()> {
    let command = Cli::command();
    match &args.dir {
        None => clap_mangen::Man::new(command)
            .render(&mut std::io::stdout().lock())
            .map_err(CliError::io("writing the man page to stdout")),
        Some(dir) => {
            let context = || format!("writing man pages into {}", dir.display());
            std::fs::create_dir_all(dir).map_err(CliError::io(context()))?;
            clap_mangen::generate_to(command, dir).map_err(CliError::io(context()))
        }
    }
}
