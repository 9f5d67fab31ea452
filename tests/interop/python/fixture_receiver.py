"""Receives the fixture events and checks them against the Python literal.

Usage: fixture_receiver.py AMQP_URL SERVICE

Subscribes to ``SERVICE.Cbor`` and ``SERVICE.Json``. For each event it prints
``MATCH {"key": …, "conversation_id": …}`` when the payload equals
``fixtures.py`` exactly (types, order, float signs), else
``MISMATCH {"key": …, "difference": …}``.
"""

from common import SuiteService, arguments, difference, say
from fixtures import payload_for


class Receiver(SuiteService):
    def handle_event(self, event, payload, conversation_id, meta):
        found = difference(payload, payload_for(event))
        if found:
            say("MISMATCH", {"key": event, "difference": found})
        else:
            say("MATCH", {"key": event, "conversation_id": conversation_id})


if __name__ == "__main__":
    url, name = arguments("amqp_url", "service")
    Receiver([url], [name + ".Cbor", name + ".Json"], [], name).run()
