"""Shared by the suite's Python services.

Each service is a subclass of eventail's ``Service``, run as a process of
its own with a unique logical name given on the command line. It talks to
the Rust side of the suite through standard output, one line per fact:
``READY`` once it consumes, then ``TAG {json}`` lines the Rust side waits
for. SIGTERM stops it (eventail installs the handler).
"""

import json
import math
import sys

from eventail.async_service.pika import Service


def say(tag, value=None):
    """One line on standard output, flushed: ``TAG`` or ``TAG {json}``."""
    if value is None:
        print(tag, flush=True)
    else:
        print(tag, json.dumps(value, ensure_ascii=False, default=repr), flush=True)


def arguments(*names):
    """The command-line arguments, by name, or a usage error."""
    if len(sys.argv) - 1 < len(names):
        sys.exit("usage: {} {}".format(sys.argv[0], " ".join(names).upper()))
    return sys.argv[1 : len(names) + 1]


def difference(got, expected, path="$"):
    """Where ``got`` differs from ``expected``, or None when they are equal.

    Stricter than ``==``: ``True == 1 == 1.0`` in Python, but a payload that
    turned a boolean into an integer, or a float into an integer, must fail.
    Maps must also keep their order, and floats their sign and NaN-ness.
    """
    if type(got) is not type(expected):
        return "{}: {} {!r}, expected {} {!r}".format(
            path, type(got).__name__, got, type(expected).__name__, expected
        )
    if isinstance(expected, dict):
        if list(got) != list(expected):
            return "{}: keys {!r}, expected {!r}".format(path, list(got), list(expected))
        for key in expected:
            found = difference(got[key], expected[key], "{}.{}".format(path, key))
            if found:
                return found
        return None
    if isinstance(expected, list):
        if len(got) != len(expected):
            return "{}: {} items, expected {}".format(path, len(got), len(expected))
        for i, (g, e) in enumerate(zip(got, expected)):
            found = difference(g, e, "{}[{}]".format(path, i))
            if found:
                return found
        return None
    if isinstance(expected, float):
        same = (math.isnan(got) and math.isnan(expected)) or (
            got == expected and math.copysign(1, got) == math.copysign(1, expected)
        )
        return None if same else "{}: {!r}, expected {!r}".format(path, got, expected)
    return None if got == expected else "{}: {!r}, expected {!r}".format(path, got, expected)


class SuiteService(Service):
    """An eventail service that says ``READY`` once it consumes."""

    def on_ready(self):
        say("READY")
