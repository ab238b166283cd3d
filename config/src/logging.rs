//! Logging setup from [`LogSettings`]: `tracing-subscriber` with an `EnvFilter`, pretty or
//! JSON lines, to stdout and/or daily rolling files written by a background thread.
//!
//! The filter is `log.level`, unless `RUST_LOG` is set (non-empty), which wins: operators can
//! turn on debug output for one run without editing files.
//!
//! ```no_run
//! # fn main() -> Result<(), mm_config::ConfigError> {
//! use mm_config::{LoadOptions, Mode, Settings, logging};
//! let settings = Settings::load(&LoadOptions::new(Mode::Development))?;
//! let _guard = logging::init(&settings.log, logging::LogTarget::Stdout)?;
//! tracing::info!(source = %settings.source_description(), "settings loaded");
//! # Ok(()) }
//! ```

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_appender::rolling::{self, Rotation};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::error::ConfigError;
use crate::settings::{LogFormat, LogSettings};

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Stdout, plus daily rolling files when `log.dir` is set (the daemon).
    Stdout,
    /// Files only, never the terminal (the TUI owns it): in `log.dir`, or in `fallback_dir`
    /// when `log.dir` is not set.
    FileOnly {
        /// Directory used when `log.dir` is not set.
        fallback_dir: PathBuf,
    },
}

/// Keeps the background log writers alive; drop it last (at the end of `main`) so buffered
/// lines are flushed.
#[must_use = "dropping the guard stops the log writers"]
#[derive(Debug)]
pub struct LogGuard {
    _guards: Vec<WorkerGuard>,
    file_dir: Option<PathBuf>,
}

impl LogGuard {
    /// The directory log files are written to, if any.
    pub fn file_dir(&self) -> Option<&Path> {
        self.file_dir.as_deref()
    }
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global `tracing` subscriber described by `settings`.
///
/// Fails (without panicking) when the filter does not parse, the log directory cannot be
/// created, or a global subscriber is already installed (e.g. a second call).
pub fn init(settings: &LogSettings, target: LogTarget) -> Result<LogGuard, ConfigError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (subscriber, guard) = build(settings, &target, rust_log.as_deref())?;
    subscriber.try_init().map_err(|e| {
        ConfigError::Logging(format!("a global subscriber is already installed: {e}"))
    })?;
    Ok(guard)
}

/// Builds the subscriber without installing it. `rust_log` is the value of `RUST_LOG`.
pub(crate) fn build(
    settings: &LogSettings,
    target: &LogTarget,
    rust_log: Option<&str>,
) -> Result<(impl tracing::Subscriber + Send + Sync + 'static, LogGuard), ConfigError> {
    let filter = filter(settings, rust_log)?;
    let mut layers: Vec<BoxedLayer> = Vec::new();
    let mut guards = Vec::new();

    let file_dir = match target {
        LogTarget::Stdout => settings.dir.clone(),
        LogTarget::FileOnly { fallback_dir } => {
            Some(settings.dir.clone().unwrap_or_else(|| fallback_dir.clone()))
        }
    };

    if *target == LogTarget::Stdout {
        let ansi = std::io::stdout().is_terminal();
        let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
        layers.push(fmt_layer(
            settings.format,
            writer,
            ansi,
            DefaultFields::new(),
        ));
        guards.push(guard);
    }

    if let Some(dir) = &file_dir {
        let writer = file_writer(dir, &settings.file_prefix, settings.max_files, &mut guards)?;
        layers.push(fmt_layer(
            settings.format,
            writer,
            false,
            FileFields::default(),
        ));
    }

    let subscriber = tracing_subscriber::registry().with(layers).with(filter);
    Ok((
        subscriber,
        LogGuard {
            _guards: guards,
            file_dir,
        },
    ))
}

fn filter(settings: &LogSettings, rust_log: Option<&str>) -> Result<EnvFilter, ConfigError> {
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        Some(directive) => EnvFilter::builder().parse(directive).map_err(|e| {
            ConfigError::Logging(format!("RUST_LOG is not a valid filter directive: {e}"))
        }),
        None => EnvFilter::builder().parse(&settings.level).map_err(|e| {
            ConfigError::Logging(format!("log.level is not a valid filter directive: {e}"))
        }),
    }
}

fn file_writer(
    dir: &Path,
    prefix: &str,
    max_files: usize,
    guards: &mut Vec<WorkerGuard>,
) -> Result<NonBlocking, ConfigError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        ConfigError::Logging(format!(
            "cannot create log directory {}: {e}",
            dir.display()
        ))
    })?;
    let appender = rolling::Builder::new()
        .rotation(Rotation::DAILY)
        .filename_prefix(prefix)
        .filename_suffix("log")
        // Retention (`log.max_files`): at start and at each daily rotation the oldest files of
        // this prefix beyond the count are deleted.
        .max_log_files(max_files.max(1))
        .build(dir)
        .map_err(|e| {
            ConfigError::Logging(format!("cannot open log files in {}: {e}", dir.display()))
        })?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    guards.push(guard);
    Ok(writer)
}

/// The span-field formatter of the file layer: [`DefaultFields`] under a type of its own.
///
/// Each pretty layer keeps a span's formatted fields in the span's extensions, keyed by its
/// formatter's type, and appends to them when the span records a field later
/// (`span.record("status", 200)`). Two layers with the same type would share one entry and
/// both append to it, so every recorded field was printed twice (and the terminal's ANSI
/// colours leaked into the files); a distinct type gives the file layer its own entry.
#[derive(Debug, Default)]
struct FileFields(DefaultFields);

impl<'writer> FormatFields<'writer> for FileFields {
    fn format_fields<R: RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }
}

fn fmt_layer<W, F>(format: LogFormat, writer: W, ansi: bool, fields: F) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    F: for<'w> FormatFields<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Pretty => layer.fmt_fields(fields).boxed(),
        LogFormat::Json => layer
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_logs(dir: &Path) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push_str(&std::fs::read_to_string(path).unwrap());
        }
        out
    }

    #[test]
    fn old_log_files_beyond_max_files_are_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        for day in 1..=20 {
            std::fs::write(
                logs.join(format!("matchmakerd.2020-01-{day:02}.log")),
                "old\n",
            )
            .unwrap();
        }
        std::fs::write(logs.join("unrelated.txt"), "kept\n").unwrap();
        let settings = LogSettings {
            dir: Some(logs.clone()),
            file_prefix: "matchmakerd".into(),
            max_files: 3,
            ..LogSettings::default()
        };
        let target = LogTarget::FileOnly {
            fallback_dir: tmp.path().join("unused"),
        };
        let (_subscriber, guard) = build(&settings, &target, None).unwrap();
        drop(guard);
        let mut names: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let log_files: Vec<&String> = names.iter().filter(|n| n.ends_with(".log")).collect();
        assert_eq!(log_files.len(), 3, "{names:?}");
        assert!(
            !names.contains(&"matchmakerd.2020-01-01.log".to_string()),
            "the oldest file is deleted: {names:?}"
        );
        assert!(names.contains(&"unrelated.txt".to_string()), "{names:?}");
    }

    #[test]
    fn file_only_writes_json_lines_to_the_fallback_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = LogSettings {
            format: LogFormat::Json,
            file_prefix: "mm-console".into(),
            ..LogSettings::default()
        };
        let target = LogTarget::FileOnly {
            fallback_dir: tmp.path().join("logs"),
        };
        let (subscriber, guard) = build(&settings, &target, None).unwrap();
        assert_eq!(guard.file_dir(), Some(tmp.path().join("logs").as_path()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(answer = 42, "hello from the test");
            tracing::debug!("filtered out at info");
        });
        drop(guard); // flushes the background writer

        let names: Vec<String> = std::fs::read_dir(tmp.path().join("logs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with("mm-console.") && names[0].ends_with(".log"));

        let logs = read_logs(&tmp.path().join("logs"));
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 1, "{logs}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["fields"]["message"], "hello from the test");
        assert_eq!(line["fields"]["answer"], 42);
    }

    /// A writer into a shared buffer, for reading what a layer wrote.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn pretty_lines_show_each_recorded_span_field_once_on_stdout_and_in_files() {
        // The daemon's layers: stdout (DefaultFields) and files (FileFields), both pretty.
        let stdout = Captured::default();
        let file = Captured::default();
        let (to_stdout, to_file) = (stdout.clone(), file.clone());
        let layers: Vec<BoxedLayer> = vec![
            fmt_layer(
                LogFormat::Pretty,
                move || to_stdout.clone(),
                false,
                DefaultFields::new(),
            ),
            fmt_layer(
                LogFormat::Pretty,
                move || to_file.clone(),
                false,
                FileFields::default(),
            ),
        ];
        let subscriber = tracing_subscriber::registry().with(layers);
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!("request", method = "GET", status = tracing::field::Empty);
            let _entered = span.enter();
            span.record("status", 200);
            tracing::info!("answered");
        });
        for (name, text) in [("stdout", stdout.text()), ("file", file.text())] {
            assert_eq!(text.matches("method").count(), 1, "{name}: {text}");
            assert_eq!(text.matches("status=200").count(), 1, "{name}: {text}");
        }
    }

    #[test]
    fn rust_log_overrides_the_configured_level() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = LogSettings {
            dir: Some(tmp.path().to_owned()),
            level: "warn".into(),
            ..LogSettings::default()
        };
        let target = LogTarget::FileOnly {
            fallback_dir: PathBuf::from("/nonexistent"),
        };
        let (subscriber, guard) = build(&settings, &target, Some("debug")).unwrap();
        assert_eq!(guard.file_dir(), Some(tmp.path()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("debug line visible");
        });
        drop(guard);
        let logs = read_logs(tmp.path());
        assert!(logs.contains("debug line visible"), "{logs}");
        assert!(
            !logs.contains('\u{1b}'),
            "no ANSI escapes in files: {logs:?}"
        );
    }

    #[test]
    fn bad_filters_are_errors() {
        let settings = LogSettings {
            level: "info,=[".into(),
            ..LogSettings::default()
        };
        let err = build(&settings, &LogTarget::Stdout, None).err().unwrap();
        assert!(err.to_string().contains("log.level"), "{err}");

        let err = build(&LogSettings::default(), &LogTarget::Stdout, Some("[[["))
            .err()
            .unwrap();
        assert!(err.to_string().contains("RUST_LOG"), "{err}");
    }

    #[test]
    fn init_twice_returns_an_error_instead_of_panicking() {
        // The only test that installs the global subscriber; it logs to a temp dir.
        let tmp = tempfile::tempdir().unwrap();
        let target = LogTarget::FileOnly {
            fallback_dir: tmp.path().to_owned(),
        };
        let first = init(&LogSettings::default(), target.clone());
        assert!(first.is_ok(), "{:?}", first.err());
        let second = init(&LogSettings::default(), target);
        let err = second.expect_err("second init must fail");
        assert!(matches!(err, ConfigError::Logging(_)), "{err}");
    }
}
