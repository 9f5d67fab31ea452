"""The Python counterpart of the ``pong`` example, for the ``ping`` example.

Usage: pong_service.py AMQP_URL

The logical service is ``pong``, as the ``ping`` example expects: run it in
a virtual host of its own. It answers ``pong.EchoMessage`` carrying
``{"message": TEXT}`` with a success result ``{"echo": TEXT in upper case}``
and prints ``HANDLED {"message", "reply_to", "correlation_id"}``.
"""

from eventail.log_criticity import INFO

from common import SuiteService, arguments, say


class Pong(SuiteService):
    def on_EchoMessage(self, payload, conversation_id, reply_to, correlation_id, meta):
        message = payload["message"]
        say(
            "HANDLED",
            {
                "message": message,
                "reply_to": reply_to,
                "correlation_id": correlation_id,
            },
        )
        self.log(INFO, "Echoing", "Sending back " + message, conversation_id)
        self.return_success(
            reply_to, {"echo": message.upper()}, conversation_id, correlation_id
        )


if __name__ == "__main__":
    (url,) = arguments("amqp_url")
    Pong([url], [], ["pong.EchoMessage"], "pong").run()
