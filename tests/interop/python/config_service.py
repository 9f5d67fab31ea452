"""An eventail service with a configuration phase.

Usage: config_service.py AMQP_URL SERVICE

It subscribes to the configuration ``SERVICE.Settings`` and to the command
``SERVICE.Echo``. It prints ``UNCONFIGURED`` when it waits for its
configuration, ``CONFIG {"key", "payload"}`` for each configuration (which
makes it configured), then ``READY`` once it consumes its commands.
``SERVICE.Echo`` is answered with ``{"echo": PAYLOAD, "settings": LAST
CONFIGURATION}``.
"""

from common import SuiteService, arguments, say


class Configured(SuiteService):
    settings = None

    def on_unconfigured(self):
        say("UNCONFIGURED")

    def handle_config(self, configuration, payload, meta):
        say("CONFIG", {"key": configuration, "payload": payload})
        self.settings = payload
        return True

    def handle_command(
        self, command, payload, conversation_id, reply_to, correlation_id, meta
    ):
        self.return_success(
            reply_to,
            {"echo": payload, "settings": self.settings},
            conversation_id,
            correlation_id,
        )


if __name__ == "__main__":
    url, name = arguments("amqp_url", "service")
    Configured(
        [url], [], [name + ".Echo"], name, config_routing_keys=[name + ".Settings"]
    ).run()
