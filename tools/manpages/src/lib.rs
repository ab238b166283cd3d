//! The man pages of `matchmakerd` and `mm-console`, generated from their command lines with
//! clap_mangen so they never drift from `--help`: one page per program (`matchmakerd.1`,
//! `mm-console.1`) and one per subcommand (`matchmakerd-config.1`,
//! `matchmakerd-completions.1`, `mm-console-completions.1`). `scripts/check-package.sh` writes
//! them before `cargo deb`, which installs them under `/usr/share/man/man1/`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, Parser};

/// The command line of `mm-manpages`.
#[derive(Debug, Parser)]
#[command(
    name = "mm-manpages",
    version,
    about = "Writes the man pages of matchmakerd and mm-console (one per program and \
             subcommand) into DIR, and prints each file written"
)]
pub struct Cli {
    /// Directory to write the pages into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Writes every page into `dir` (created if missing); returns the files written.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for command in [
        matchmakerd::cli::Cli::command(),
        mm_console::cli::Cli::command(),
    ] {
        write_pages(command, dir, &mut written)?;
    }
    Ok(written)
}

/// Writes the page of `command` and of each of its subcommands (named `<program>-<sub>`).
fn write_pages(
    command: clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let mut command = command;
    command.build();
    let program = command.get_name().to_owned();
    let subcommands: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
        .cloned()
        .collect();
    written.push(render(command, &program, dir)?);
    for sub in subcommands {
        // Once built, a subcommand's display name is `<program>-<sub>`: the page's title.
        let name = format!("{program}-{}", sub.get_name());
        written.push(render(sub, &name, dir)?);
    }
    Ok(())
}

fn render(command: clap::Command, name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .with_context(|| format!("cannot render the page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_flags_not_directories() {
        let help = Cli::try_parse_from(["mm-manpages", "--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(
            help.to_string().contains("Usage: mm-manpages <DIR>"),
            "{help}"
        );
        let unknown = Cli::try_parse_from(["mm-manpages", "--out"]).unwrap_err();
        assert_eq!(unknown.kind(), clap::error::ErrorKind::UnknownArgument);
        assert!(unknown.use_stderr());
        let missing = Cli::try_parse_from(["mm-manpages"]).unwrap_err();
        assert_eq!(
            missing.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        let cli = Cli::try_parse_from(["mm-manpages", "target/man"]).unwrap();
        assert_eq!(cli.dir, PathBuf::from("target/man"));
    }

    #[test]
    fn every_program_and_subcommand_gets_a_page_with_its_flags() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_all(dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "matchmakerd.1",
                "matchmakerd-config.1",
                "matchmakerd-completions.1",
                "mm-console.1",
                "mm-console-completions.1",
            ]
        );
        let daemon = std::fs::read_to_string(dir.path().join("matchmakerd.1")).unwrap();
        assert!(daemon.contains(".TH matchmakerd 1"), "{daemon}");
        assert!(daemon.contains("config\\-dir"), "{daemon}");
        let config = std::fs::read_to_string(dir.path().join("matchmakerd-config.1")).unwrap();
        assert!(config.contains(".TH matchmakerd-config 1"), "{config}");
        let console = std::fs::read_to_string(dir.path().join("mm-console.1")).unwrap();
        assert!(console.contains(".TH mm-console 1"), "{console}");
        assert!(console.contains("\\-\\-delete"), "{console}");
    }
}
