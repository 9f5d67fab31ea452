//! The Python side of the comparison: the virtualenv with eventail 2.3.6
//! that the interop tests use too, `target/pyref`, created on first use
//! and reused after.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::paths;

/// The eventail release the comparison is made against.
pub(crate) const EVENTAIL: &str = "2.3.6";

/// A virtualenv with eventail installed.
pub(crate) struct Venv {
    dir: PathBuf,
}

impl Venv {
    /// The venv's Python interpreter.
    pub(crate) fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// A script that pip installed in the venv (eventail's tools).
    pub(crate) fn script(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
}

/// The venv, set up if needed; `Err` says why Python cannot be used.
pub(crate) fn venv() -> Result<Venv, String> {
    if !paths::on_path("python3") {
        return Err("python3 is not on PATH".into());
    }
    let venv = Venv {
        dir: paths::target_dir().join("pyref"),
    };
    if installed_version(&venv.python()).as_deref() == Some(EVENTAIL) {
        return Ok(venv);
    }
    eprintln!(
        "==> bench: creating {} with eventail=={EVENTAIL}",
        venv.dir.display()
    );
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv.dir))?;
    run(Command::new(venv.python()).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        &format!("eventail=={EVENTAIL}"),
    ]))?;
    match installed_version(&venv.python()) {
        Some(v) if v == EVENTAIL => Ok(venv),
        other => Err(format!(
            "eventail {EVENTAIL} did not install (found {other:?})"
        )),
    }
}

fn installed_version(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('eventail'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}
