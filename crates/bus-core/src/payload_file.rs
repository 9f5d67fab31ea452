//! Payload files for tools: `.json` or `.cbor` chosen by extension, `-`
//! for standard input.
//!
//! This is the one place bus-core reads anything: plain blocking file
//! reads, which command-line tools need and which involve no network.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Codec, DecodeError, Value};

/// Why a payload file could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PayloadFileError {
    /// The extension is neither `.json` nor `.cbor`.
    #[error("{path}: unknown payload extension, expected .json or .cbor")]
    UnknownExtension {
        /// The file.
        path: PathBuf,
    },
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The content is not valid for its format.
    #[error("{path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: DecodeError,
    },
}

/// The codec a payload file is written in, from its extension
/// (case-insensitive).
pub fn payload_file_codec(path: &Path) -> Result<Codec, PayloadFileError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("json") => Ok(Codec::Json),
        Some("cbor") => Ok(Codec::Cbor),
        _ => Err(PayloadFileError::UnknownExtension {
            path: path.to_owned(),
        }),
    }
}

/// Decodes the bytes of a payload file named `path`.
///
/// For standard input (`-`), which has no extension, the bytes are read as
/// JSON when they are valid JSON, and as CBOR otherwise.
pub fn decode_payload_file(path: &Path, bytes: &[u8]) -> Result<Value, PayloadFileError> {
    let invalid = |source| PayloadFileError::Invalid {
        path: path.to_owned(),
        source,
    };
    if path == Path::new("-") {
        if bytes.is_empty() {
            return Err(invalid(DecodeError {
                codec: Codec::Json,
                message: "standard input is empty".into(),
            }));
        }
        return Codec::Json
            .decode_value(bytes)
            .or_else(|_| Codec::Cbor.decode_value(bytes))
            .map_err(invalid);
    }
    let codec = payload_file_codec(path)?;
    if bytes.is_empty() {
        return Err(invalid(DecodeError {
            codec,
            message: "the file is empty".into(),
        }));
    }
    codec.decode_value(bytes).map_err(invalid)
}

/// Reads and decodes a payload file, or standard input for `-`.
pub fn read_payload_file(path: &Path) -> Result<Value, PayloadFileError> {
    let unreadable = |source| PayloadFileError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(unreadable)?;
        buf
    } else {
        // Check the extension before touching the disk.
        payload_file_codec(path)?;
        std::fs::read(path).map_err(unreadable)?
    };
    decode_payload_file(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_chooses_the_codec() {
        assert_eq!(
            payload_file_codec(Path::new("a.json")).unwrap(),
            Codec::Json
        );
        assert_eq!(
            payload_file_codec(Path::new("dir/a.CBOR")).unwrap(),
            Codec::Cbor
        );
        let err = payload_file_codec(Path::new("a.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.yaml: unknown payload extension, expected .json or .cbor"
        );
        assert!(payload_file_codec(Path::new("noext")).is_err());
    }

    #[test]
    fn decoding_names_the_file() {
        let v = decode_payload_file(Path::new("p.json"), br#"{"k": 1}"#).unwrap();
        assert_eq!(v.get("k"), Some(&Value::from(1)));
        let err = decode_payload_file(Path::new("p.json"), b"{oops").unwrap_err();
        assert!(matches!(err, PayloadFileError::Invalid { .. }));
        assert!(
            err.to_string()
                .starts_with("p.json: cannot decode JSON payload"),
            "{err}"
        );
        let err = decode_payload_file(Path::new("p.cbor"), &[0xff]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("p.cbor: cannot decode CBOR payload"),
            "{err}"
        );
        assert!(decode_payload_file(Path::new("p.cbor"), b"").is_err());
    }

    #[test]
    fn stdin_accepts_json_then_cbor() {
        let json = decode_payload_file(Path::new("-"), b"[1, 2]").unwrap();
        assert_eq!(json, Value::Array(vec![Value::from(1), Value::from(2)]));
        let cbor = Codec::Cbor.encode_value(&Value::Bytes(vec![9])).unwrap();
        assert_eq!(
            decode_payload_file(Path::new("-"), &cbor).unwrap(),
            Value::Bytes(vec![9])
        );
        assert!(decode_payload_file(Path::new("-"), b"").is_err());
    }

    #[test]
    fn unreadable_file_is_typed() {
        let err = read_payload_file(Path::new("/nonexistent/dir/x.json")).unwrap_err();
        assert!(matches!(err, PayloadFileError::Unreadable { .. }));
        assert!(
            err.to_string().starts_with("/nonexistent/dir/x.json: "),
            "{err}"
        );
        assert!(matches!(
            read_payload_file(Path::new("/nonexistent/x.txt")).unwrap_err(),
            PayloadFileError::UnknownExtension { .. }
        ));
    }
}
