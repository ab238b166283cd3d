//! `mm-console`: see the library crate for everything.

fn main() -> std::process::ExitCode {
    mm_console::run()
}
