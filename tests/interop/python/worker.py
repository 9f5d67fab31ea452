"""One instance of a service shared with a Rust instance (load balancing).

Usage: worker.py AMQP_URL SERVICE

Answers ``SERVICE.Work`` carrying ``{"n": N}`` with a success result
``{"n": N, "by": "python"}``, after printing ``HANDLED {"n": N}``.
"""

from common import SuiteService, arguments, say


class Worker(SuiteService):
    def on_Work(self, payload, conversation_id, reply_to, correlation_id, meta):
        say("HANDLED", {"n": payload["n"]})
        self.return_success(
            reply_to,
            {"n": payload["n"], "by": "python"},
            conversation_id,
            correlation_id,
        )


if __name__ == "__main__":
    url, name = arguments("amqp_url", "service")
    Worker([url], [], [name + ".Work"], name).run()
