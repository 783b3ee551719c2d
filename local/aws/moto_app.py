"""moto's server, handling one request at a time: `python -m local.aws.moto_app -p PORT`.

It also answers `GET /_local/sent-emails`: the emails moto's SES has sent, read from moto's own
state (moto's `/moto-api/data.json` has them too, but serialises every model of every service
on each call, which grows slow as the tables fill, and holds every other request meanwhile).

moto runs a TransactWriteItems by applying its items and, when it must cancel it, putting back
copies of the tables taken when it began. Under moto's threaded server, a write handled in the
meantime (another transaction that committed, say) is undone along with it: two concurrent
changes of one email could then leave neither. DynamoDB isolates transactions; handling the
requests one at a time (connections stay concurrent and keep-alive) makes moto do the same.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, Iterable

from moto.server import main as moto_main
import moto.server


class OneAtATime:
    """A WSGI middleware that runs the application under one lock, response included."""

    def __init__(self, app: Any):
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == SENT_EMAILS_PATH and environ.get("REQUEST_METHOD") == "GET":
            with self._lock:
                body = json.dumps(sent_emails()).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        with self._lock:
            # Consumed inside the lock: the body is where moto does the work.
            return [b"".join(self._app(environ, start_response))]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


SENT_EMAILS_PATH = "/_local/sent-emails"


def sent_emails() -> list[dict]:
    """Every email moto's SES (v1 and v2 share it) sent, in every account and region, oldest first."""
    from moto.ses.models import ses_backends

    sent = []
    for account in ses_backends.values():
        for backend in account.values():
            for message in getattr(backend, "sent_messages", []):
                if hasattr(message, "destinations"):  # a Message, not a raw or templated one
                    sent.append({"id": message.id, "source": message.source, "destinations": message.destinations,
                                 "subject": message.subject, "body": message.body})
    return sent


def main() -> None:
    dispatcher = moto.server.DomainDispatcherApplication
    moto.server.DomainDispatcherApplication = lambda *args, **kwargs: OneAtATime(dispatcher(*args, **kwargs))
    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
