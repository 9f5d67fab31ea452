//! What `broker up` started, kept in a file so `down` and `status` know.
//!
//! The file is plain `key=value` lines under the target directory, so
//! `cargo clean` forgets it along with everything else built here.

use std::fmt;
use std::fs;
use std::path::PathBuf;

use crate::paths;

/// How xtask started a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Launcher {
    /// `docker compose -f docker/compose.yml up -d`.
    Docker,
    /// `rabbitmq-server -detached`.
    LocalServer,
}

impl Launcher {
    fn key(self) -> &'static str {
        match self {
            Launcher::Docker => "docker",
            Launcher::LocalServer => "rabbitmq-server",
        }
    }

    fn from_key(key: &str) -> Option<Launcher> {
        [Launcher::Docker, Launcher::LocalServer]
            .into_iter()
            .find(|l| l.key() == key)
    }
}

impl fmt::Display for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Launcher::Docker => "docker compose (docker/compose.yml)",
            Launcher::LocalServer => "rabbitmq-server -detached",
        })
    }
}

/// A broker xtask started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Started {
    /// How.
    pub(crate) launcher: Launcher,
    /// The `host:port` it was started for.
    pub(crate) address: String,
}

fn file() -> PathBuf {
    paths::target_dir().join("xtask-broker.state")
}

/// Reads the state file; `None` when xtask started nothing (or the file is
/// unreadable, which amounts to the same: nothing xtask can stop).
pub(crate) fn load() -> Option<Started> {
    parse(&fs::read_to_string(file()).ok()?)
}

fn parse(text: &str) -> Option<Started> {
    let field = |name: &str| {
        text.lines()
            .filter_map(|line| line.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    Some(Started {
        launcher: Launcher::from_key(&field("launcher")?)?,
        address: field("address")?,
    })
}

pub(crate) fn save(started: &Started) -> Result<(), String> {
    let path = file();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    fs::write(&path, render(started)).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn render(started: &Started) -> String {
    format!(
        "# Written by `cargo xtask broker up`: the broker it started.\nlauncher={}\naddress={}\n",
        started.launcher.key(),
        started.address
    )
}

pub(crate) fn clear() -> Result<(), String> {
    let path = file();
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_then_parse_round_trips() {
        for launcher in [Launcher::Docker, Launcher::LocalServer] {
            let started = Started {
                launcher,
                address: "127.0.0.1:5672".into(),
            };
            assert_eq!(parse(&render(&started)), Some(started));
        }
    }

    #[test]
    fn unknown_or_incomplete_files_mean_nothing_started() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("launcher=podman\naddress=h:1\n"), None);
        assert_eq!(parse("launcher=docker\n"), None);
    }
}
