//! The Python side of the comparison: the interoperability suite's venv
//! with eventail 2.3.6, `target/pyref`, set up by [`crate::pyenv`].

use std::path::PathBuf;

use crate::pyenv;

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

/// The venv, set up if needed; `Err` says why eventail cannot be measured.
pub(crate) fn venv() -> Result<Venv, String> {
    if let Some(why) = pyenv::missing_python() {
        return Err(why);
    }
    pyenv::ensure().map(|dir| Venv { dir })
}
