"""moto's server, handling one request at a time: `python -m local.moto_app -p PORT`.

moto runs a TransactWriteItems by applying its items and, when it must cancel it, putting back
copies of the tables taken when it began. Under moto's threaded server, a write handled in the
meantime (another transaction that committed, say) is undone along with it: two concurrent
changes of one email could then leave neither. DynamoDB isolates transactions; handling the
requests one at a time (connections stay concurrent and keep-alive) makes moto do the same.
"""

from __future__ import annotations

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
        with self._lock:
            # Consumed inside the lock: the body is where moto does the work.
            return [b"".join(self._app(environ, start_response))]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


def main() -> None:
    dispatcher = moto.server.DomainDispatcherApplication
    moto.server.DomainDispatcherApplication = lambda *args, **kwargs: OneAtATime(dispatcher(*args, **kwargs))
    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
