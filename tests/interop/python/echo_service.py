"""An eventail service that answers commands, for the command, log and
monitoring scenarios.

Usage: echo_service.py AMQP_URL SERVICE

- ``SERVICE.Echo``: logs INFO ``echoing`` (full message: the payload's repr;
  additional fields ``client`` = 7 and ``command``), publishes the event
  ``SERVICE.Echoed`` with the payload, and answers with a success result
  ``{"echo": PAYLOAD, "conversation_id": ID}``.
- ``SERVICE.Fail``: answers with an error result ``{"reason": "refused"}``.

Each command handled is printed as ``HANDLED {"key", "conversation_id",
"correlation_id", "reply_to"}``.
"""

from eventail.log_criticity import INFO

from common import SuiteService, arguments, say


class Echo(SuiteService):
    def handle_command(
        self, command, payload, conversation_id, reply_to, correlation_id, meta
    ):
        say(
            "HANDLED",
            {
                "key": command,
                "conversation_id": conversation_id,
                "correlation_id": correlation_id,
                "reply_to": reply_to,
            },
        )
        if command.endswith(".Echo"):
            self.log(
                INFO,
                "echoing",
                repr(payload),
                conversation_id=conversation_id,
                additional_fields={"client": 7, "command": command},
            )
            self.publish_event(
                self.logical_service + ".Echoed", payload, conversation_id
            )
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


if __name__ == "__main__":
    url, name = arguments("amqp_url", "service")
    Echo([url], [], [name + ".Echo", name + ".Fail"], name).run()
