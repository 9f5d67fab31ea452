"""The payload of the fidelity scenarios, as a Python literal.

``suite/fixtures.rs`` holds the same value as a Rust literal, written
independently: each side checks what it received against its own copy.
Keep the two in the same order (maps are compared in order).
"""


def json_payload():
    """Everything JSON can carry."""
    return {
        "text": "héllo wörld — ĉu ŝi? 日本語 Ελληνικά עברית",
        "emoji": "🦀🐍👍🏽👨‍👩‍👧",
        "control": "tab\there, nul\u0000, newline\n, quote\" backslash\\",
        "clé 🔑": "unicode key",
        "long": "ab" * 150,
        "empty_text": "",
        "nested": {"level1": {"level2": {"level3": [1, [2, [3, []]], {}]}}},
        "list": [1, "two", 3.5, None, True, {"k": "v"}, [False]],
        "empty_map": {},
        "empty_list": [],
        "i64_min": -9223372036854775808,
        "i64_max": 9223372036854775807,
        "u64_max": 18446744073709551615,
        "negative": -42,
        "zero": 0,
        "float": 3.141592653589793,
        "float_whole": 1.0,
        "float_negative": -2.5e-10,
        "float_large": 1.7976931348623157e308,
        "float_small": 5e-324,
        "float_tiny_normal": 2.2250738585072014e-308,
        "float_negative_zero": -0.0,
        "true": True,
        "false": False,
        "null": None,
    }


def cbor_payload():
    """The JSON payload, plus what only CBOR can carry."""
    payload = json_payload()
    payload.update(
        {
            "bytes": b"\x00\x01\x7f\x80\xfe\xff",
            "empty_bytes": b"",
            "nested_bytes": {"list": [b"\xde\xad\xbe\xef"]},
            "cbor_int_min": -18446744073709551616,
            "float_infinity": float("inf"),
            "float_negative_infinity": float("-inf"),
            "float_nan": float("nan"),
        }
    )
    return payload


def payload_for(routing_key):
    """The expected payload of a fixture event: ``*.Cbor`` or ``*.Json``."""
    return cbor_payload() if routing_key.endswith(".Cbor") else json_payload()
