"""The pong service on eventail 2.3.6, for `cargo xtask bench`.

The same shape as the Rust `pong` example: logical service `pong`, command
`pong.EchoMessage` carrying {"message": TEXT}, answered with the success
result {"echo": TEXT in upper case}, and one INFO log "Echoing" on the bus
per command; prefetch 10.

    python eventail_pong.py [AMQP_URL...]
"""

import sys

from eventail.async_service.pika import Service
from eventail.log_criticity import INFO


class Pong(Service):
    PREFETCH_COUNT = 10

    def on_EchoMessage(self, payload, conversation_id, reply_to, correlation_id, meta):
        message = payload["message"]
        self.log(INFO, "Echoing", f"Sending back {message}", conversation_id)
        self.return_success(
            reply_to, {"echo": message.upper()}, conversation_id, correlation_id
        )


def main() -> None:
    urls = sys.argv[1:] or ["amqp://localhost"]
    service = Pong(urls, [], ["pong.EchoMessage"], "pong")
    print("eventail pong: consuming pong.commands", flush=True)
    service.run()


if __name__ == "__main__":
    main()
