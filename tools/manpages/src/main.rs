//! `mm-manpages DIR`: writes the man pages of `matchmakerd` and `mm-console` into `DIR`; see
//! the library crate.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: mm-manpages DIR  (writes the man pages of matchmakerd and mm-console)");
        return ExitCode::from(2);
    };
    match mm_manpages::write_all(&PathBuf::from(dir)) {
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
