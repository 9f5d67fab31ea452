"""Publishes the fixture events, once in CBOR and once in JSON.

Usage: fixture_publisher.py AMQP_URL SERVICE CONVERSATION_ID

Once connected it publishes ``SERVICE.Cbor`` (eventail's default codec),
then switches to JSON with ``use_json()`` and publishes ``SERVICE.Json``,
and prints ``PUBLISHED``. It runs until SIGTERM.
"""

from common import SuiteService, arguments, say
from fixtures import cbor_payload, json_payload


class Publisher(SuiteService):
    def __init__(self, url, name, conversation_id):
        super().__init__([url], [], [], name)
        self.conversation_id = conversation_id

    def on_ready(self):
        self.publish_event(
            self.logical_service + ".Cbor", cbor_payload(), self.conversation_id
        )
        self.use_json()
        self.publish_event(
            self.logical_service + ".Json", json_payload(), self.conversation_id
        )
        say("PUBLISHED")


if __name__ == "__main__":
    Publisher(*arguments("amqp_url", "service", "conversation_id")).run()
