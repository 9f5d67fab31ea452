//! Where the programs of both sides are, and how to start them.
//!
//! `cargo xtask interop` sets `BUS_INTEROP_VENV` (the venv with eventail)
//! and `BUS_INTEROP_BIN_DIR` (where `bus` and `examples/` were built). Run
//! directly, the suite looks for `target/pyref` and for the binaries next to
//! its own (which `cargo test` does not rebuild: use xtask).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use bus_test_support::amqp_url;

use crate::process::Proc;

/// The locations, checked once.
pub(crate) struct Tools {
    venv: PathBuf,
    bin_dir: PathBuf,
    python_dir: PathBuf,
}

static TOOLS: OnceLock<Tools> = OnceLock::new();

/// The eventail tools the suite uses, installed in the venv's `bin/`.
const EVENTAIL_TOOLS: &[&str] = &[
    "send_command.py",
    "publish_event.py",
    "logger.py",
    "monitor.py",
    "publish_configuration.py",
    "resurrect.py",
    "inspect_queue.py",
];

impl Tools {
    /// Finds everything, or says what is missing and how to get it.
    pub(crate) fn locate() -> Result<(), String> {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let venv = std::env::var_os("BUS_INTEROP_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("../../target/pyref"));
        let bin_dir = match std::env::var_os("BUS_INTEROP_BIN_DIR") {
            Some(dir) => PathBuf::from(dir),
            // The test binary is `<target>/<profile>/deps/interop-<hash>`.
            None => std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
                .ok_or("cannot tell where the suite's binary is")?,
        };
        let tools = Tools {
            venv,
            bin_dir,
            python_dir: manifest.join("python"),
        };
        let mut missing = Vec::new();
        if !tools.python().is_file() {
            missing.push(format!(
                "the Python venv with eventail 2.3.6 ({})",
                tools.venv.display()
            ));
        }
        for tool in EVENTAIL_TOOLS {
            let path = tools.venv.join("bin").join(tool);
            if tools.python().is_file() && !path.is_file() {
                missing.push(format!("eventail's {tool} ({})", path.display()));
            }
        }
        for binary in [tools.bus(), tools.example("pong"), tools.example("ping")] {
            if !binary.is_file() {
                missing.push(format!("{}", binary.display()));
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "missing: {}; `cargo xtask interop` creates the venv and builds the binaries",
                missing.join(", ")
            ));
        }
        let _ = TOOLS.set(tools);
        Ok(())
    }

    fn get() -> &'static Tools {
        TOOLS.get().expect("Tools::locate runs before any scenario")
    }

    fn python(&self) -> PathBuf {
        self.venv.join("bin").join("python")
    }

    fn bus(&self) -> PathBuf {
        self.bin_dir.join("bus")
    }

    fn example(&self, name: &str) -> PathBuf {
        self.bin_dir.join("examples").join(name)
    }
}

/// The venv's Python running `script`, unbuffered, in UTF-8, writing no
/// bytecode into the source tree.
fn python(script: &Path) -> Command {
    let mut cmd = Command::new(Tools::get().python());
    cmd.arg(script)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// One of the suite's Python services or scripts (`tests/interop/python/`),
/// with the broker URL `url` as its first argument.
pub(crate) fn suite_python(script: &str, url: &str, args: &[&str]) -> Command {
    let mut cmd = python(&Tools::get().python_dir.join(script));
    cmd.arg(url).args(args);
    cmd
}

/// One of eventail's installed tools, with the broker URL `url` as its
/// first argument, as they all take it.
pub(crate) fn eventail(tool: &str, url: &str, args: &[&str]) -> Command {
    let mut cmd = python(&Tools::get().venv.join("bin").join(tool));
    cmd.arg(url).args(args);
    cmd
}

/// The built `bus`, talking to the broker at `url`, without colour.
pub(crate) fn bus_at(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(Tools::get().bus());
    cmd.args(args)
        .env("AMQP_URL", url)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .env_remove("CLICOLOR_FORCE");
    cmd
}

/// The built `bus`, talking to the test broker.
pub(crate) fn bus(args: &[&str]) -> Command {
    bus_at(&amqp_url(), args)
}

/// One of bus-service's built examples.
pub(crate) fn example(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(Tools::get().example(name));
    cmd.args(args).env("RUST_LOG", "info");
    cmd
}

/// Starts one of the suite's Python services on the test broker and waits
/// until it says `READY`.
pub(crate) async fn python_service(script: &str, args: &[&str]) -> Proc {
    let mut service = Proc::spawn(script, suite_python(script, &amqp_url(), args));
    service.wait_for("READY").await;
    service
}

/// Starts a live view of `bus` (`logger`, `monitor`) and waits until it
/// says it is watching, which it does once its queue is bound.
pub(crate) async fn bus_watching(args: &[&str]) -> Proc {
    let mut view = Proc::spawn(&format!("bus {}", args.join(" ")), bus(args));
    view.wait_for_err("watching").await;
    view
}

/// `bus logger` (with `--json` if `json`) showing the first record whose
/// routing key matches `filter`, then exiting; started and watching.
pub(crate) async fn bus_logger_for_one(filter: &str, json: bool) -> Proc {
    let mut args = vec![
        "logger",
        "--filter",
        filter,
        "--count",
        "1",
        "--timeout",
        "120",
    ];
    if json {
        args.insert(0, "--json");
    }
    bus_watching(&args).await
}
