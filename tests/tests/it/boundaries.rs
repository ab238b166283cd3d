//! Architectural boundaries checked on the source: mm-common's store is the only code of the
//! matchmaker that speaks Redis. Outside `common/src/store/`, no source file of `common`,
//! `config`, `daemon` or `console` may build a command, a pipeline or a script, or take a
//! connection. (The test kit, the reference game server, the load generator and the benchmark
//! driver play other roles and keep their own Redis connections.)

use std::path::{Path, PathBuf};

/// Code that talks to Redis directly.
const FORBIDDEN: [&str; 7] = [
    "redis::cmd",
    "redis::pipe",
    "Script::new",
    ".connection()",
    "query_async",
    "invoke_async",
    "AsyncCommands",
];

/// The crates that must reach Redis through the store, relative to the workspace root.
const CHECKED: [&str; 4] = ["common", "config", "daemon", "console"];

/// The one place allowed to speak Redis.
const STORE: &str = "common/src/store";

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|err| panic!("reading {dir:?}: {err}"));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name == "target") {
                continue;
            }
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// Every `file:line: text` of the checked crates that uses a forbidden construct (comments
/// aside), except under `exempt`.
fn violations(root: &Path, exempt: Option<&str>) -> Vec<String> {
    let mut files = Vec::new();
    for krate in CHECKED {
        rust_files(&root.join(krate), &mut files);
    }
    let exempt = exempt.map(|dir| root.join(dir));
    let mut found = Vec::new();
    for file in files
        .iter()
        .filter(|file| exempt.as_ref().is_none_or(|dir| !file.starts_with(dir)))
    {
        let text = std::fs::read_to_string(file).unwrap_or_else(|err| panic!("{file:?}: {err}"));
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(construct) = FORBIDDEN.iter().find(|f| code.contains(*f)) {
                let shown = file.strip_prefix(root).unwrap_or(file);
                found.push(format!(
                    "{}:{}: `{construct}` in `{}`",
                    shown.display(),
                    number + 1,
                    code
                ));
            }
        }
    }
    found
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn only_the_store_speaks_redis() {
    let found = violations(&workspace_root(), Some(STORE));
    assert!(
        found.is_empty(),
        "Redis is spoken outside {STORE} (add an operation to the store instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_redis_calls_where_they_are() {
    // Without the store's exemption the same walk must report the store's own calls, or the
    // check above could pass by reading nothing.
    let found = violations(&workspace_root(), None);
    assert!(
        found
            .iter()
            .any(|hit| hit.starts_with("common/src/store/") && hit.contains("`redis::cmd`")),
        "the walk did not see the store's Redis calls: {found:?}"
    );
}
