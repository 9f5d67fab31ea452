"""An eventail service that sends a mandatory command nobody listens to.

Usage: returning_service.py AMQP_URL SERVICE COMMAND [--raise]

Once ready it sends ``COMMAND`` (mandatory, eventail's default for commands)
with payload ``{"n": 1}``, conversation id ``conv-returned``, reply_to
``SERVICE.Reply`` and correlation id ``corr-returned``. The broker returns
it, and eventail calls ``handle_returned_message``, which prints
``RETURNED {"key", "payload", "envelope"}``. With ``--raise`` the hook then
raises, to show what eventail does with an error there.
"""

import sys

from common import SuiteService, arguments, say


class Returning(SuiteService):
    def __init__(self, url, name, command, fail):
        super().__init__([url], [], [name + ".Reply"], name)
        self.command = command
        self.fail = fail

    def on_ready(self):
        super().on_ready()
        self.send_command(
            self.command,
            {"n": 1},
            "conv-returned",
            self.logical_service + ".Reply",
            "corr-returned",
        )

    def handle_returned_message(self, key, payload, envelope):
        say("RETURNED", {"key": key, "payload": payload, "envelope": envelope})
        if self.fail:
            raise RuntimeError("the hook failed")


if __name__ == "__main__":
    url, name, command = arguments("amqp_url", "service", "command")
    Returning(url, name, command, "--raise" in sys.argv[4:]).run()
