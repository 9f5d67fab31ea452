//! Reading the payload to publish: a `.json`/`.cbor` file, standard input
//! (`-`), or inline JSON (`--data`).

use bus_core::{Codec, Value, read_payload_file};

use crate::cli::PayloadArgs;
use crate::exit::CliError;

/// The payload the arguments name.
pub(crate) fn read(args: &PayloadArgs) -> Result<Value, CliError> {
    match (&args.file, &args.data) {
        (_, Some(data)) => Codec::Json
            .decode_value(data.as_bytes())
            .map_err(CliError::InlineData),
        (Some(path), None) => Ok(read_payload_file(path)?),
        // clap's argument group requires one of them.
        (None, None) => Err(CliError::Usage(
            "a payload is required: a file, - for standard input, or --data".into(),
        )),
    }
}

/// The payload encoded with `codec`.
pub(crate) fn encode(value: &Value, codec: Codec) -> Result<Vec<u8>, CliError> {
    Ok(codec.encode_value(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_data_is_strict_json() {
        let args = PayloadArgs {
            file: None,
            data: Some(r#"{"k": 1}"#.into()),
        };
        assert_eq!(read(&args).unwrap(), Value::map([("k", Value::from(1))]));
        let bad = PayloadArgs {
            file: None,
            data: Some("{k: 1}".into()),
        };
        let err = read(&bad).unwrap_err();
        assert!(err.to_string().starts_with("--data: "), "{err}");
        assert_eq!(err.code(), crate::exit::DATA);
    }

    #[test]
    fn bytes_cannot_be_json() {
        let err = encode(&Value::Bytes(vec![1]), Codec::Json).unwrap_err();
        assert_eq!(err.code(), crate::exit::DATA);
        assert!(encode(&Value::Bytes(vec![1]), Codec::Cbor).is_ok());
    }
}
