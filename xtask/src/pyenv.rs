//! The Python virtualenv with the reference implementation, eventail 2.3.6,
//! for the interoperability suite: `target/pyref`.
//!
//! The pins are in `tests/interop/requirements.txt`. A venv that already
//! has exactly those versions is reused as is (no network); otherwise it is
//! created if needed and pip installs the pins into it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::paths;

/// Where the pins are, relative to the workspace root.
const REQUIREMENTS: &str = "tests/interop/requirements.txt";

/// The venv's directory.
pub(crate) fn venv_dir() -> PathBuf {
    paths::target_dir().join("pyref")
}

/// Why the suite cannot run here at all (no Python), as opposed to a
/// failure to set it up.
pub(crate) fn missing_python() -> Option<String> {
    if paths::on_path("python3") {
        None
    } else {
        Some("python3 is not on PATH; install Python 3 (with its venv module) to run it".into())
    }
}

/// `(package, version)` for each `name==version` line of the requirements,
/// extras (`name[extra]`) left out.
fn pins(requirements: &str) -> Vec<(String, String)> {
    requirements
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter_map(|l| l.split_once("=="))
        .map(|(name, version)| {
            let name = name.split('[').next().unwrap_or(name).trim();
            (name.to_owned(), version.trim().to_owned())
        })
        .collect()
}

/// Whether `python` has exactly the pinned versions installed.
fn satisfied(python: &Path, pins: &[(String, String)]) -> bool {
    let wanted: Vec<String> = pins
        .iter()
        .map(|(name, version)| format!("({name:?}, {version:?})"))
        .collect();
    let check = format!(
        "import importlib.metadata as m, sys\n\
         sys.exit(0 if all(m.version(n) == v for n, v in [{}]) else 1)",
        wanted.join(", ")
    );
    Command::new(python)
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(what: &str, cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Makes sure the venv exists with the pinned packages; returns its
/// directory. Any failure is an error: the suite must never pass, or be
/// skipped, because its reference could not be installed.
pub(crate) fn ensure() -> Result<PathBuf, String> {
    let dir = venv_dir();
    let python = dir.join("bin").join("python");
    let requirements = paths::workspace_root().join(REQUIREMENTS);
    let text = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let pins = pins(&text);
    if python.is_file() && satisfied(&python, &pins) {
        eprintln!("==> interop: Python venv {} is up to date", dir.display());
        return Ok(dir);
    }
    if !python.is_file() {
        eprintln!("==> interop: python3 -m venv {}", dir.display());
        run(
            "creating the Python venv",
            Command::new("python3").arg("-m").arg("venv").arg(&dir),
        )?;
    }
    eprintln!("==> interop: pip install -r {REQUIREMENTS}");
    run(
        "installing eventail 2.3.6 with pip",
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    if !satisfied(&python, &pins) {
        return Err(format!(
            "the venv {} still lacks the versions pinned in {REQUIREMENTS} after pip install",
            dir.display()
        ));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::pins;

    #[test]
    fn pins_are_read_without_extras_and_comments() {
        let text = "# reference\neventail[synchronous]==2.3.6\npika==1.4.4  # checked\n\nfoo>=1\n";
        assert_eq!(
            pins(text),
            [
                ("eventail".to_owned(), "2.3.6".to_owned()),
                ("pika".to_owned(), "1.4.4".to_owned())
            ]
        );
    }
}
