"""Writes the golden vectors of bus-core from the reference implementation.

The files in ``data/`` are produced by eventail 2.3.6 and the cbor2 it pulls
in, encoding payloads exactly as an eventail service does:

- CBOR: ``cbor2.dumps(value)``, eventail's default serializer;
- JSON: ``json.dumps(value, ensure_ascii=False).encode("utf-8")``, what
  eventail's ``use_json()`` installs;
- GELF: the ``payload`` bytes and ``routing_key`` of ``eventail.gelf.GELF``.

``data/manifest.json`` lists every case. The Rust test ``tests/golden.rs``
checks each file against a value written out by hand, so the data files are
committed and the Rust tests need no Python.

To regenerate, from the repository root::

    python3 -m venv target/pyref
    target/pyref/bin/pip install eventail==2.3.6
    target/pyref/bin/python crates/bus-core/tests/golden/generate.py

The output is deterministic: re-running with the same package versions
rewrites identical bytes (the GELF timestamp is pinned, and no value depends
on hash order).
"""

import datetime
import decimal
import importlib.metadata
import json
import pathlib
import uuid
from unittest import mock

import cbor2
import eventail.gelf

DATA = pathlib.Path(__file__).resolve().parent / "data"

UTC = datetime.timezone.utc
PLUS_TWO = datetime.timezone(datetime.timedelta(hours=2))


def cbor(value):
    """eventail's default serializer."""
    return cbor2.dumps(value)


def as_json(value):
    """eventail's serializer after ``use_json()``."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


# (name, value, codecs, description[, notes]). ``notes`` maps a codec to
# a known difference between what Python reads back and what bus reads; the
# Rust test pins down bus's side of each.
BOTH = ("cbor", "json")
CBOR_ONLY = ("cbor",)
CASES = [
    (
        "command",
        {"message": "hello"},
        BOTH,
        "a typical command payload",
    ),
    (
        "unicode",
        'a"b\\c\nd\te\x01f\x7fg\u2028h é ✓ 日本語 🦀 👩\u200d💻',
        BOTH,
        "a text string with escapes, control characters, accents, CJK, "
        "an emoji and a ZWJ sequence (a bare string, so the JSON has no "
        "separators and can be compared byte for byte)",
    ),
    (
        "nested",
        {
            "clé": "välue",
            "🔑": ["🚪", {"deep": [True, None, [1, [2, [3]]]]}],
            "list": [{"a": 1}, {"b": []}, {}],
            "map": {"inner": {"x": -1, "y": 0.5}},
        },
        BOTH,
        "nested maps and lists, with non-ASCII keys",
    ),
    ("empty_map", {}, BOTH, "an empty map"),
    ("empty_list", [], BOTH, "an empty list"),
    (
        "integers",
        {
            "zero": 0,
            "one": 1,
            "minus_one": -1,
            "i8_edges": [23, 24, -24, -25, 255, 256, -256, -257],
            "u16_max": 65535,
            "u32_max": 4294967295,
            "u32_next": 4294967296,
            "negative": -1000000,
            "i64_min": -(2**63),
            "i64_max": 2**63 - 1,
            "u64_max": 2**64 - 1,
        },
        BOTH,
        "integers at the CBOR header boundaries and the limits of i64 and u64",
    ),
    (
        "floats",
        {
            "tenth": 0.1,
            "huge": 1e300,
            "subnormal": 5e-324,
            "negative": -2.5,
            "one": 1.0,
            "zero": 0.0,
            "negative_zero": -0.0,
            "half": 0.5,
        },
        BOTH,
        "floats; cbor2 writes every finite float as a double",
    ),
    ("booleans", [True, False], BOTH, "true and false"),
    ("null", None, BOTH, "a bare null (None)"),
    (
        "nonfinite",
        [float("inf"), float("-inf"), float("nan")],
        BOTH,
        "infinities and NaN, which cbor2 writes as half-precision floats",
        {
            "json": "json.dumps writes the non-standard tokens Infinity, "
            "-Infinity and NaN, which json.loads accepts; bus's JSON decoder "
            "(serde_json) rejects them",
        },
    ),
    (
        "bytes",
        {"empty": b"", "data": b"\x00\x01\x7f\x80\xfe\xff"},
        CBOR_ONLY,
        "byte strings",
    ),
    (
        "integer_keys",
        {1: "one", -2: "minus two", "three": 3},
        CBOR_ONLY,
        "a map with integer keys next to a text key",
    ),
    (
        "datetime",
        {
            "utc": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "micros": datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
            "offset": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=PLUS_TWO),
        },
        CBOR_ONLY,
        "aware datetimes, which cbor2 writes as tag 0 (RFC 3339 text)",
    ),
    (
        "bignum",
        {
            "u64_max_plus_one": 2**64,
            "min_native": -(2**64),
            "below_min_native": -(2**64) - 1,
            "huge": 2**100,
        },
        BOTH,
        "integers beyond the CBOR native range, which cbor2 writes as "
        "bignums (tag 2 and tag 3); -2**64 itself is still native",
        {
            "json": "json.dumps writes every digit and json.loads reads an "
            "exact int; bus reads integers outside i64/u64 as floats",
        },
    ),
    (
        "python_tags",
        {
            "date": datetime.date(2024, 1, 2),
            "uuid": uuid.UUID("01234567-89ab-cdef-0123-456789abcdef"),
            "decimal": decimal.Decimal("1.25"),
            "set": {1, 2, 3},
        },
        CBOR_ONLY,
        "other Python types cbor2 tags: date (1004), UUID (37), "
        "Decimal (4) and set (258)",
    ),
]


class FakeEndpoint:
    """What eventail.gelf.GELF reads from a service."""

    HOSTNAME = "host"
    ID = 4242
    logical_service = "svc"


GELF_TIMESTAMP = 1714000000.123456


def gelf_record():
    with mock.patch.object(eventail.gelf.time, "time", return_value=GELF_TIMESTAMP):
        return eventail.gelf.GELF(
            FakeEndpoint(),
            6,
            "Echoing ✓",
            'Sending back "HI"\nfrom 🦀',
            "conv-42",
            {"client": 7, "_already": "x"},
        )


def main():
    DATA.mkdir(parents=True, exist_ok=True)
    for old in DATA.iterdir():
        old.unlink()
    manifest = {
        "generator": {
            "eventail": importlib.metadata.version("eventail"),
            "cbor2": importlib.metadata.version("cbor2"),
        },
        "cases": [],
    }
    encoders = {"cbor": cbor, "json": as_json}
    for name, value, codecs, description, *notes in CASES:
        notes = notes[0] if notes else {}
        for codec in codecs:
            file = f"{name}.{codec}"
            (DATA / file).write_bytes(encoders[codec](value))
            case = {
                "name": name,
                "file": file,
                "codec": codec,
                "description": description,
            }
            if codec in notes:
                case["known_difference"] = notes[codec]
            manifest["cases"].append(case)
    record = gelf_record()
    (DATA / "gelf_info.json").write_bytes(record.payload)
    manifest["gelf"] = {
        "file": "gelf_info.json",
        "routing_key": record.routing_key,
        "description": "eventail.gelf.GELF(endpoint, 6, short, full, "
        'conversation_id, {"client": 7, "_already": "x"}).payload, with '
        "endpoint HOSTNAME 'host', ID 4242, logical_service 'svc' and "
        f"time.time() pinned to {GELF_TIMESTAMP!r}",
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (DATA / "manifest.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
