//! `--save`: one file per payload, `<key>.<conversation_id>.<ext>`, never
//! overwriting one that exists.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::exit::CliError;

/// Writes `bytes` to `<key>.<conversation_id>.<ext>` in `dir`, or to
/// `<key>.<conversation_id>.2.<ext>`, `.3`… when that exists. Returns the
/// path written. An empty conversation id is written `na`, as eventail does.
pub(crate) fn payload_file(
    dir: &Path,
    key: &str,
    conversation_id: &str,
    ext: &str,
    bytes: &[u8],
) -> Result<PathBuf, CliError> {
    let conversation = if conversation_id.is_empty() {
        "na"
    } else {
        conversation_id
    };
    let base = format!("{}.{}", file_safe(key), file_safe(conversation));
    for n in 1u32.. {
        let name = if n == 1 {
            format!("{base}.{ext}")
        } else {
            format!("{base}.{n}.{ext}")
        };
        let path = dir.join(name);
        // create_new is atomic: two tools saving at once cannot overwrite
        // each other either.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                return file
                    .write_all(bytes)
                    .map(|()| path.clone())
                    .map_err(|source| CliError::Save { path, source });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CliError::Save { path, source }),
        }
    }
    Err(CliError::Internal("ran out of file names".into()))
}

/// Routing keys and ids may hold any character; a file name may not hold
/// `/` or NUL, and should not start with `.`.
fn file_safe(part: &str) -> String {
    let cleaned: String = part
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    match cleaned.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None => cleaned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let first = payload_file(dir.path(), "a.B", "c-1", "cbor", b"1").unwrap();
        let second = payload_file(dir.path(), "a.B", "c-1", "cbor", b"2").unwrap();
        let third = payload_file(dir.path(), "a.B", "c-1", "cbor", b"3").unwrap();
        assert_eq!(first.file_name().unwrap(), "a.B.c-1.cbor");
        assert_eq!(second.file_name().unwrap(), "a.B.c-1.2.cbor");
        assert_eq!(third.file_name().unwrap(), "a.B.c-1.3.cbor");
        assert_eq!(std::fs::read(first).unwrap(), b"1");
        assert_eq!(std::fs::read(third).unwrap(), b"3");
    }

    #[test]
    fn names_are_file_safe() {
        let dir = tempfile::tempdir().unwrap();
        let p = payload_file(dir.path(), "../x/y", "", "json", b"{}").unwrap();
        assert_eq!(p.file_name().unwrap(), "_._x_y.na.json");
        assert_eq!(p.parent().unwrap(), dir.path());
    }

    #[test]
    fn unwritable_directory_is_reported() {
        let err = payload_file(Path::new("/nonexistent/dir"), "k", "c", "cbor", b"").unwrap_err();
        assert_eq!(err.code(), crate::exit::CANT_CREATE);
        assert!(
            err.to_string()
                .starts_with("cannot write /nonexistent/dir/k.c.cbor")
        );
    }
}
