//! `mm-manpages DIR`: writes the man pages of `matchmakerd` and `mm-console` into `DIR`; see
//! the library crate.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Parses or exits: help and version with 0, a usage error (a flag for a directory) with 2.
    let cli = mm_manpages::Cli::parse();
    match mm_manpages::write_all(&cli.dir) {
        Ok(pages) => {
            for page in pages {
                println!("{}", page.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("mm-manpages: {err:#}");
            ExitCode::FAILURE
        }
    }
}
