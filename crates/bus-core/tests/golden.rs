//! Golden vectors from the reference implementation, eventail 2.3.6.
//!
//! `tests/golden/generate.py` encodes payloads exactly as an eventail
//! service does (`cbor2.dumps`, or `json.dumps(..., ensure_ascii=False)`
//! after `use_json()`) and writes a GELF record with eventail's own `GELF`
//! class. The files are committed under `tests/golden/data/`, listed in its
//! `manifest.json`; this test needs no Python.
//!
//! Every file is checked against a value written out by hand below, never
//! against something derived from the same files.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use bus_core::{Codec, GelfRecord, LogLevel, LogSource, Value};
use serde::Deserialize;
use serde_json::Value as Json;

#[derive(Debug, Deserialize)]
struct Manifest {
    cases: Vec<Case>,
    gelf: GelfCase,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    file: String,
    codec: String,
    known_difference: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GelfCase {
    file: String,
    routing_key: String,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/data")
}

fn read(file: &str) -> Vec<u8> {
    let path = data_dir().join(file);
    fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn manifest() -> Manifest {
    serde_json::from_slice(&read("manifest.json")).expect("manifest.json is valid")
}

fn codec_of(case: &Case) -> Codec {
    match case.codec.as_str() {
        "cbor" => Codec::Cbor,
        "json" => Codec::Json,
        other => panic!("{}: unknown codec {other:?}", case.file),
    }
}

// Shorthands for writing expected values.

fn text(s: &str) -> Value {
    Value::from(s)
}

fn int(i: i128) -> Value {
    Value::Integer(i)
}

fn array<const N: usize>(items: [Value; N]) -> Value {
    Value::Array(items.into())
}

fn tag(tag: u64, inner: Value) -> Value {
    Value::Tag(tag, Box::new(inner))
}

/// The unicode case: JSON escapes, control characters (U+0001 is escaped
/// by both sides, DEL and U+2028 by neither), accents, CJK, an emoji and a
/// ZWJ sequence.
const UNICODE: &str = "a\"b\\c\nd\te\u{1}f\u{7f}g\u{2028}h é ✓ 日本語 🦀 👩\u{200d}💻";

/// The value eventail encoded for each case, written out by hand.
fn expected(name: &str) -> Option<Value> {
    let value = match name {
        "command" => Value::map([("message", text("hello"))]),
        "unicode" => text(UNICODE),
        "nested" => Value::map([
            ("clé", text("välue")),
            (
                "🔑",
                array([
                    text("🚪"),
                    Value::map([(
                        "deep",
                        array([
                            Value::Bool(true),
                            Value::Null,
                            array([int(1), array([int(2), array([int(3)])])]),
                        ]),
                    )]),
                ]),
            ),
            (
                "list",
                array([
                    Value::map([("a", int(1))]),
                    Value::map([("b", array([]))]),
                    Value::Map(vec![]),
                ]),
            ),
            (
                "map",
                Value::map([(
                    "inner",
                    Value::map([("x", int(-1)), ("y", Value::Float(0.5))]),
                )]),
            ),
        ]),
        "empty_map" => Value::Map(vec![]),
        "empty_list" => Value::Array(vec![]),
        "integers" => Value::map([
            ("zero", int(0)),
            ("one", int(1)),
            ("minus_one", int(-1)),
            (
                "i8_edges",
                array([
                    int(23),
                    int(24),
                    int(-24),
                    int(-25),
                    int(255),
                    int(256),
                    int(-256),
                    int(-257),
                ]),
            ),
            ("u16_max", int(65_535)),
            ("u32_max", int(4_294_967_295)),
            ("u32_next", int(4_294_967_296)),
            ("negative", int(-1_000_000)),
            ("i64_min", int(-9_223_372_036_854_775_808)),
            ("i64_max", int(9_223_372_036_854_775_807)),
            ("u64_max", int(18_446_744_073_709_551_615)),
        ]),
        "floats" => Value::map([
            ("tenth", Value::Float(0.1)),
            ("huge", Value::Float(1e300)),
            ("subnormal", Value::Float(5e-324)),
            ("negative", Value::Float(-2.5)),
            ("one", Value::Float(1.0)),
            ("zero", Value::Float(0.0)),
            ("negative_zero", Value::Float(-0.0)),
            ("half", Value::Float(0.5)),
        ]),
        "booleans" => array([Value::Bool(true), Value::Bool(false)]),
        "null" => Value::Null,
        "nonfinite" => array([
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(f64::NAN),
        ]),
        "bytes" => Value::map([
            ("empty", Value::Bytes(vec![])),
            (
                "data",
                Value::Bytes(vec![0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff]),
            ),
        ]),
        "integer_keys" => Value::Map(vec![
            (int(1), text("one")),
            (int(-2), text("minus two")),
            (text("three"), int(3)),
        ]),
        // cbor2 writes aware datetimes as tag 0, RFC 3339 text.
        "datetime" => Value::map([
            ("utc", tag(0, text("2024-01-02T03:04:05Z"))),
            ("micros", tag(0, text("2024-01-02T03:04:05.123456Z"))),
            ("offset", tag(0, text("2024-01-02T03:04:05+02:00"))),
        ]),
        // Tag 2 holds n, tag 3 holds -1 - n, as minimal big-endian bytes.
        // -2**64 fits the native negative head and is no bignum.
        "bignum" => Value::map([
            (
                "u64_max_plus_one",
                tag(2, Value::Bytes(vec![1, 0, 0, 0, 0, 0, 0, 0, 0])),
            ),
            ("min_native", int(-(1 << 64))),
            (
                "below_min_native",
                tag(3, Value::Bytes(vec![1, 0, 0, 0, 0, 0, 0, 0, 0])),
            ),
            (
                "huge",
                tag(2, Value::Bytes([&[0x10][..], &[0; 12]].concat())),
            ),
        ]),
        "python_tags" => Value::map([
            ("date", tag(1004, text("2024-01-02"))),
            (
                "uuid",
                tag(
                    37,
                    Value::Bytes(vec![
                        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67,
                        0x89, 0xab, 0xcd, 0xef,
                    ]),
                ),
            ),
            // Decimal fraction: [exponent, mantissa], 125e-2.
            ("decimal", tag(4, array([int(-2), int(125)]))),
            ("set", tag(258, array([int(1), int(2), int(3)]))),
        ]),
        _ => return None,
    };
    Some(value)
}

/// What bus reads from a data file.
#[derive(Debug)]
enum Outcome {
    /// The value, as eventail encoded it or as bus reads it.
    Reads(Value),
    /// A decode error.
    Rejects,
}

/// What bus reads from each file: the value eventail encoded, except for
/// the known differences flagged in the manifest, pinned down here so that
/// changing them is a deliberate act.
fn bus_reads(case: &Case) -> Outcome {
    match case.file.as_str() {
        // Python's json writes `Infinity`, `-Infinity` and `NaN`, which are
        // not JSON; Python reads them back, serde_json refuses them.
        "nonfinite.json" => Outcome::Rejects,
        // Python's json writes and reads integers of any size; serde_json
        // reads those outside i64/u64 as the nearest float.
        "bignum.json" => Outcome::Reads(Value::map([
            (
                "u64_max_plus_one",
                Value::Float(18_446_744_073_709_551_616.0),
            ),
            ("min_native", Value::Float(-18_446_744_073_709_551_616.0)),
            // -2**64 - 1 rounds to -2**64.
            (
                "below_min_native",
                Value::Float(-18_446_744_073_709_551_616.0),
            ),
            ("huge", Value::Float(2f64.powi(100))),
        ])),
        _ => Outcome::Reads(expected(&case.name).expect("every case has an expectation")),
    }
}

/// The files with a known difference, which the manifest must flag.
const KNOWN_DIFFERENCES: &[&str] = &["nonfinite.json", "bignum.json"];

/// Cases whose CBOR holds no float, so that any encoder writing the
/// shortest heads and definite lengths (cbor2 and ciborium both do) must
/// produce the very same bytes.
///
/// Floats are different: cbor2 writes every finite float as a double, while
/// ciborium writes the shortest of half, single or double that keeps the
/// value. Both are valid CBOR and decode to the same value, so byte equality
/// is not required there.
const CBOR_BYTE_EXACT: &[&str] = &[
    "command",
    "unicode",
    "empty_map",
    "empty_list",
    "integers",
    "booleans",
    "null",
    "bytes",
    "integer_keys",
    "datetime",
    "bignum",
    "python_tags",
];

/// Structural equality, stricter than `==` on floats: NaN equals NaN and
/// `-0.0` differs from `0.0`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
        }
        (Value::Map(xs), Value::Map(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys)
                    .all(|((kx, vx), (ky, vy))| same(kx, ky) && same(vx, vy))
        }
        (Value::Tag(tx, x), Value::Tag(ty, y)) => tx == ty && same(x, y),
        _ => a == b,
    }
}

fn assert_same(actual: &Value, expected: &Value, what: &str) {
    assert!(
        same(actual, expected),
        "{what}:\n  actual:   {actual:?}\n  expected: {expected:?}"
    );
}

#[test]
fn every_data_file_is_in_the_manifest_with_an_expectation() {
    let manifest = manifest();
    let mut listed: BTreeSet<String> = manifest.cases.iter().map(|c| c.file.clone()).collect();
    listed.insert(manifest.gelf.file.clone());
    listed.insert("manifest.json".into());
    let on_disk: BTreeSet<String> = fs::read_dir(data_dir())
        .expect("the data directory exists")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(on_disk, listed);
    for case in &manifest.cases {
        assert!(
            expected(&case.name).is_some(),
            "{}: no hand-written expectation for case {:?}",
            case.file,
            case.name
        );
        assert_eq!(
            case.file,
            format!("{}.{}", case.name, case.codec),
            "file names follow <name>.<codec>"
        );
        assert_eq!(
            case.known_difference.is_some(),
            KNOWN_DIFFERENCES.contains(&case.file.as_str()),
            "{}: the manifest and this test disagree on a known difference",
            case.file
        );
    }
    // The cases the brief asks for are all there.
    for name in ["unicode", "nested", "integers", "floats", "command"] {
        for codec in ["cbor", "json"] {
            assert!(
                listed.contains(&format!("{name}.{codec}")),
                "{name}.{codec}"
            );
        }
    }
}

#[test]
fn decode_value_matches_hand_written_values() {
    for case in manifest().cases {
        let codec = codec_of(&case);
        let decoded = codec.decode_value(&read(&case.file));
        match (bus_reads(&case), decoded) {
            (Outcome::Reads(expected), Ok(decoded)) => {
                assert_same(&decoded, &expected, &case.file);
            }
            (Outcome::Reads(_), Err(e)) => panic!("{}: {e}", case.file),
            (Outcome::Rejects, Ok(v)) => panic!("{}: now reads {v:?}", case.file),
            (Outcome::Rejects, Err(e)) => assert_eq!(e.codec, codec),
        }
    }
}

#[test]
fn serde_path_agrees_with_decode_value() {
    // `Codec::decode::<Value>` goes through serde (as a `Value` field of a
    // typed payload does); it must read the same value as the dynamic path,
    // tags and bignums included.
    for case in manifest().cases {
        let codec = codec_of(&case);
        let decoded = codec.decode::<Value>(&read(&case.file));
        match (bus_reads(&case), decoded) {
            (Outcome::Reads(expected), Ok(decoded)) => {
                assert_same(&decoded, &expected, &case.file);
            }
            (Outcome::Reads(_), Err(e)) => panic!("{}: {e}", case.file),
            (Outcome::Rejects, Ok(v)) => panic!("{}: now reads {v:?}", case.file),
            (Outcome::Rejects, Err(_)) => {}
        }
    }
}

#[test]
fn rust_encodings_read_back_and_match_where_exact() {
    for case in manifest().cases {
        let codec = codec_of(&case);
        let expected = expected(&case.name).expect("checked above");
        if case.known_difference.is_some() {
            // Neither infinities, NaN nor bignums have a JSON form; bus
            // refuses to write them where Python writes non-standard JSON
            // or digits it alone reads exactly.
            assert!(codec.encode_value(&expected).is_err(), "{}", case.file);
            continue;
        }
        let ours = codec
            .encode_value(&expected)
            .unwrap_or_else(|e| panic!("{}: {e}", case.file));
        let back = codec.decode_value(&ours).unwrap();
        assert_same(&back, &expected, &format!("{} re-encoded", case.file));
        if codec == Codec::Cbor && CBOR_BYTE_EXACT.contains(&case.name.as_str()) {
            assert_eq!(ours, read(&case.file), "{}: bytes differ", case.file);
        }
    }
}

#[test]
fn json_text_is_byte_exact_with_use_json() {
    // eventail's `use_json()` writes raw UTF-8 (`ensure_ascii=False`); so do
    // we. A bare string has no separators, so the bytes must be identical.
    // (For maps and lists Python writes `", "` and `": "` where serde_json
    // writes `","` and `":"`: the same JSON, not the same bytes.)
    let ours = Codec::Json.encode_value(&text(UNICODE)).unwrap();
    assert_eq!(
        String::from_utf8(ours).unwrap(),
        String::from_utf8(read("unicode.json")).unwrap()
    );
    // Only U+0001 is \u-escaped; everything else non-ASCII is raw UTF-8.
    let eventails = String::from_utf8(read("unicode.json")).unwrap();
    assert_eq!(eventails.matches("\\u").count(), 1);
    assert!(eventails.contains("\\u0001"));
    assert!(eventails.contains("🦀"));
}

#[derive(Debug, PartialEq, Deserialize)]
struct Echo {
    message: String,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Limits {
    i64_min: i64,
    i64_max: i64,
    u64_max: u64,
    negative: i32,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Floats {
    tenth: f64,
    huge: f64,
    subnormal: f64,
    one: f64,
}

#[test]
fn typed_decode_into_serde_structs() {
    for (codec, ext) in [(Codec::Cbor, "cbor"), (Codec::Json, "json")] {
        let echo: Echo = codec.decode(&read(&format!("command.{ext}"))).unwrap();
        assert_eq!(
            echo,
            Echo {
                message: "hello".into()
            },
            "{codec}"
        );
        let limits: Limits = codec.decode(&read(&format!("integers.{ext}"))).unwrap();
        assert_eq!(
            limits,
            Limits {
                i64_min: i64::MIN,
                i64_max: i64::MAX,
                u64_max: u64::MAX,
                negative: -1_000_000,
            },
            "{codec}"
        );
        let floats: Floats = codec.decode(&read(&format!("floats.{ext}"))).unwrap();
        assert_eq!(
            floats,
            Floats {
                tenth: 0.1,
                huge: 1e300,
                subnormal: 5e-324,
                one: 1.0,
            },
            "{codec}"
        );
        let text: String = codec.decode(&read(&format!("unicode.{ext}"))).unwrap();
        assert_eq!(text, UNICODE, "{codec}");
    }
}

const GELF_TIMESTAMP: f64 = 1_714_000_000.123_456;

fn gelf_source() -> LogSource {
    LogSource {
        service: "svc".into(),
        hostname: "host".into(),
        pid: 4242,
    }
}

#[test]
fn gelf_record_from_eventail() {
    let manifest = manifest();
    let body = read(&manifest.gelf.file);
    let record = GelfRecord::from_bytes(&body).unwrap();
    assert_eq!(record.short_message, "Echoing ✓");
    assert_eq!(record.full_message, "Sending back \"HI\"\nfrom 🦀");
    assert_eq!(record.level, 6);
    assert_eq!(record.log_level(), LogLevel::Info);
    assert_eq!(record.host, "svc@host");
    assert_eq!(record.timestamp.to_bits(), GELF_TIMESTAMP.to_bits());
    assert_eq!(record.conversation_id, "conv-42");
    assert_eq!(record.logical_service, "svc");
    assert_eq!(record.worker_pid, Some(4242));
    let extra: Vec<(&str, &Json)> = record
        .additional_fields
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    assert_eq!(
        extra,
        [("_client", &Json::from(7)), ("_already", &Json::from("x"))]
    );
    assert_eq!(record.routing_key(), "svc.INFO");
    assert_eq!(record.routing_key(), manifest.gelf.routing_key);
}

#[test]
fn gelf_record_built_in_rust_equals_eventails() {
    let manifest = manifest();
    let body = read(&manifest.gelf.file);
    let mut ours = GelfRecord::new(
        &gelf_source(),
        LogLevel::Info,
        "Echoing ✓",
        "Sending back \"HI\"\nfrom 🦀",
        "conv-42",
        GELF_TIMESTAMP,
    );
    ours.add_field("client", Json::from(7)).unwrap();
    ours.add_field("_already", Json::from("x")).unwrap();
    assert_eq!(ours.routing_key(), manifest.gelf.routing_key);

    let theirs: Json = serde_json::from_slice(&body).unwrap();
    let ours_json = ours.to_json();
    assert_eq!(ours_json, theirs);
    // serde_json's map equality ignores order; the field order is eventail's.
    let keys = |j: &Json| -> Vec<String> { j.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&ours_json), keys(&theirs));
    // Our bytes parse to the same object. They are not the same bytes:
    // eventail's GELF uses `json.dumps` defaults, so it \u-escapes non-ASCII
    // and writes `", "` and `": "` separators; we write compact raw UTF-8.
    let ours_bytes = ours.to_bytes();
    assert_ne!(ours_bytes, body);
    assert_eq!(serde_json::from_slice::<Json>(&ours_bytes).unwrap(), theirs);
    assert_eq!(GelfRecord::from_bytes(&body).unwrap(), ours);
}
