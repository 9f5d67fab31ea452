"""An eventail service that fails on every message until it comes back
from the dead-letter queue.

Usage: flaky_service.py AMQP_URL SERVICE

It subscribes to the event ``SERVICE.Poison``. A delivery without an
``x-death`` header (never dead-lettered) raises, so eventail requeues it
once then dead-letters it. A resurrected one (with ``x-death``) is printed as
``HANDLED {"payload", "conversation_id", "first_death_queue"}``.
"""

from common import SuiteService, arguments, say


class Flaky(SuiteService):
    def handle_event(self, event, payload, conversation_id, meta):
        if "x-death" not in meta:
            raise RuntimeError("poisoned: {!r}".format(payload))
        say(
            "HANDLED",
            {
                "payload": payload,
                "conversation_id": conversation_id,
                "first_death_queue": meta.get("x-first-death-queue"),
            },
        )


if __name__ == "__main__":
    url, name = arguments("amqp_url", "service")
    Flaky([url], [name + ".Poison"], [], name).run()
