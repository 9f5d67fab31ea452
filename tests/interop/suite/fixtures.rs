//! The payload of the fidelity scenarios, as a Rust literal.
//!
//! `python/fixtures.py` holds the same value as a Python literal, written
//! independently: each side checks what it received against its own copy.
//! Keep the two in the same order (maps are compared in order).

use bus_core::Value;

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn int(i: i128) -> Value {
    Value::Integer(i)
}

fn float(f: f64) -> Value {
    Value::Float(f)
}

fn list(items: Vec<Value>) -> Value {
    Value::Array(items)
}

/// Everything JSON can carry.
pub(crate) fn json_payload() -> Value {
    Value::map(json_entries())
}

fn json_entries() -> Vec<(&'static str, Value)> {
    vec![
        ("text", text("héllo wörld — ĉu ŝi? 日本語 Ελληνικά עברית")),
        ("emoji", text("🦀🐍👍🏽👨\u{200d}👩\u{200d}👧")),
        (
            "control",
            text("tab\there, nul\u{0}, newline\n, quote\" backslash\\"),
        ),
        ("clé 🔑", text("unicode key")),
        ("long", text(&"ab".repeat(150))),
        ("empty_text", text("")),
        (
            "nested",
            Value::map([(
                "level1",
                Value::map([(
                    "level2",
                    Value::map([(
                        "level3",
                        list(vec![
                            int(1),
                            list(vec![int(2), list(vec![int(3), list(vec![])])]),
                            Value::map(Vec::<(&str, Value)>::new()),
                        ]),
                    )]),
                )]),
            )]),
        ),
        (
            "list",
            list(vec![
                int(1),
                text("two"),
                float(3.5),
                Value::Null,
                Value::Bool(true),
                Value::map([("k", text("v"))]),
                list(vec![Value::Bool(false)]),
            ]),
        ),
        ("empty_map", Value::map(Vec::<(&str, Value)>::new())),
        ("empty_list", list(vec![])),
        ("i64_min", int(i64::MIN.into())),
        ("i64_max", int(i64::MAX.into())),
        ("u64_max", int(u64::MAX.into())),
        ("negative", int(-42)),
        ("zero", int(0)),
        ("float", float(std::f64::consts::PI)),
        ("float_whole", float(1.0)),
        ("float_negative", float(-2.5e-10)),
        ("float_large", float(f64::MAX)),
        // The smallest subnormal, then the smallest normal number.
        ("float_small", float(5e-324)),
        ("float_tiny_normal", float(f64::MIN_POSITIVE)),
        ("float_negative_zero", float(-0.0)),
        ("true", Value::Bool(true)),
        ("false", Value::Bool(false)),
        ("null", Value::Null),
    ]
}

/// The JSON payload, plus what only CBOR can carry.
pub(crate) fn cbor_payload() -> Value {
    let mut entries = json_entries();
    entries.extend([
        (
            "bytes",
            Value::Bytes(vec![0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff]),
        ),
        ("empty_bytes", Value::Bytes(vec![])),
        (
            "nested_bytes",
            Value::map([(
                "list",
                list(vec![Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef])]),
            )]),
        ),
        ("cbor_int_min", int(-(1i128 << 64))),
        ("float_infinity", float(f64::INFINITY)),
        ("float_negative_infinity", float(f64::NEG_INFINITY)),
        ("float_nan", float(f64::NAN)),
    ]);
    Value::map(entries)
}

/// Where `got` differs from `expected`, or `None` when they are the same
/// value: same variants, maps in the same order, floats bit for bit (so
/// `-0.0` is not `0.0`) except that any NaN matches any NaN.
pub(crate) fn difference(got: &Value, expected: &Value, path: &str) -> Option<String> {
    let differs = || Some(format!("{path}: {got:?}, expected {expected:?}"));
    match (got, expected) {
        (Value::Map(g), Value::Map(e)) => {
            let keys = |m: &[(Value, Value)]| m.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
            if keys(g) != keys(e) {
                return Some(format!(
                    "{path}: keys {:?}, expected {:?}",
                    keys(g),
                    keys(e)
                ));
            }
            g.iter()
                .zip(e)
                .find_map(|((k, gv), (_, ev))| difference(gv, ev, &format!("{path}.{k}")))
        }
        (Value::Array(g), Value::Array(e)) => {
            if g.len() != e.len() {
                return Some(format!("{path}: {} items, expected {}", g.len(), e.len()));
            }
            g.iter()
                .zip(e)
                .enumerate()
                .find_map(|(i, (gv, ev))| difference(gv, ev, &format!("{path}[{i}]")))
        }
        (Value::Float(g), Value::Float(e)) => {
            let same = (g.is_nan() && e.is_nan()) || g.to_bits() == e.to_bits();
            if same { None } else { differs() }
        }
        (g, e) if g == e => None,
        _ => differs(),
    }
}

/// The expected payload of a fixture event: `*.Cbor` or `*.Json`.
pub(crate) fn payload_for(routing_key: &str) -> Value {
    if routing_key.ends_with(".Cbor") {
        cbor_payload()
    } else {
        json_payload()
    }
}

/// Makes sure [`difference`] is as strict as the scenarios need: a
/// comparison that let `1 == 1.0` through would hide a lossy codec.
pub(crate) fn check_comparator() -> Result<(), String> {
    let ordered = Value::map([("a", int(1)), ("b", int(2))]);
    let swapped = Value::map([("b", int(2)), ("a", int(1))]);
    let must_differ = [
        (float(0.0), float(-0.0)),
        (int(1), float(1.0)),
        (Value::Bool(true), int(1)),
        (text("a"), Value::Bytes(b"a".to_vec())),
        (swapped, ordered),
    ];
    for (a, b) in &must_differ {
        if difference(a, b, "$").is_none() {
            return Err(format!("the comparator finds {a:?} and {b:?} equal"));
        }
    }
    match difference(&cbor_payload(), &cbor_payload(), "$") {
        Some(d) => Err(format!(
            "the comparator finds the fixture unequal to itself: {d}"
        )),
        None => Ok(()),
    }
}
