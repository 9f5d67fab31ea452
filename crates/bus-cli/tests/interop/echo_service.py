"""An eventail service for the bus-cli interop tests.

Usage: echo_service.py AMQP_URL SERVICE

It answers ``SERVICE.Echo`` with a success result ``{"echo": PAYLOAD,
"conversation_id": ID}`` and logs INFO ``echoing``; it answers
``SERVICE.Fail`` with an error result ``{"reason": "refused"}``. It prints
``ready`` once it consumes, and stops on SIGTERM.
"""

import sys

from eventail.async_service.pika import Service
from eventail.log_criticity import INFO


class Echo(Service):
    def handle_command(
        self, command, payload, conversation_id, reply_to, correlation_id, meta
    ):
        if command.endswith(".Echo"):
            self.log(INFO, "echoing", repr(payload), conversation_id=conversation_id)
            self.return_success(
                reply_to,
                {"echo": payload, "conversation_id": conversation_id},
                conversation_id,
                correlation_id,
            )
        else:
            self.return_error(
                reply_to, {"reason": "refused"}, conversation_id, correlation_id
            )

    def on_ready(self):
        print("ready", flush=True)


if __name__ == "__main__":
    url, name = sys.argv[1], sys.argv[2]
    Echo([url], [], [name + ".Echo", name + ".Fail"], name).run()
