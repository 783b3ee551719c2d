"""The template's HTTP API served locally: every `Type: HttpApi` event of every function becomes
a route, and each request reaches the function as the payload format 2.0 event API Gateway
sends, with the function's answer turned back into HTTP the way API Gateway does it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..processes import Log
from .lambda_runtime import ACCOUNT, LocalFunction

# API Gateway's own limit on request bodies.
MAX_BODY = 10 * 1024 * 1024


@dataclass
class Route:
    method: str  # "POST", or "ANY"
    path: str  # "/create", "/users/{id}", "/files/{proxy+}", or "$default"
    function: LocalFunction

    @property
    def key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters if this route serves the request, else None."""
        if self.path == "$default":
            return {}
        if self.method not in ("ANY", method):
            return None
        pattern = "^"
        for segment in self.path.strip("/").split("/"):
            name = re.fullmatch(r"\{(\w+)(\+?)\}", segment)
            if name and name.group(2):
                pattern += f"/(?P<{name.group(1)}>.+)"
            elif name:
                pattern += f"/(?P<{name.group(1)}>[^/]+)"
            else:
                pattern += "/" + re.escape(segment) if segment else ""
        found = re.match(pattern + "/?$", path or "/")
        return found.groupdict() if found else None

    def priority(self) -> tuple[int, int]:
        """API Gateway prefers exact paths, then parameters, then greedy paths, then $default."""
        if self.path == "$default":
            return (3, 0)
        if "+}" in self.path:
            return (2, -len(self.path))
        if "{" in self.path:
            return (1, -len(self.path))
        return (0, -len(self.path))


def routes_from(events_by_function: dict[LocalFunction, dict[str, dict]]) -> list[Route]:
    routes = []
    for function, events in events_by_function.items():
        for event in events.values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties", {})
            path, method = props.get("Path"), props.get("Method")
            if path is None and method is None:
                routes.append(Route("ANY", "$default", function))
            else:
                routes.append(Route(str(method or "ANY").upper().replace("X-AMAZON-APIGATEWAY-ANY-METHOD", "ANY"), str(path), function))
    return sorted(routes, key=Route.priority)


class _ApiServer(ThreadingHTTPServer):
    # The listen backlog: socketserver's default of 5 resets connections when a few dozen
    # clients connect at once, which API Gateway never does.
    request_queue_size = 128


class HttpApi:
    """A ThreadingHTTPServer in front of the functions, with the API's JWT authorizer if it
    has one (anything with `check(route_key, authorization)`, see local.aws.jwt_authorizer)."""

    def __init__(self, routes: list[Route], host: str, port: int, log: Log, authorizer=None):
        self.routes = routes
        self.authorizer = authorizer
        self._log = log
        try:
            self._server = _ApiServer((host, port), self._handler_class())
        except OSError as error:
            raise OSError(f"cannot serve the API on port {port}: {error.strerror}") from error
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name="http-api", daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

    def _handler_class(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "local-http-api"
            sys_version = ""

            def log_message(self, *_args) -> None:
                pass

            def _send(self, status: int, headers: dict[str, str], cookies: list[str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                for cookie in cookies:
                    self.send_header("Set-Cookie", cookie)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _message(self, status: int, message: str) -> None:
                body = json.dumps({"message": message}).encode()
                self._send(status, {"Content-Type": "application/json"}, [], body)

            def _serve(self) -> None:
                started = time.monotonic()
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    return self._message(413, "Request Entity Too Large")
                body = self.rfile.read(length) if length else b""
                found = api._find(self.command, url.path)
                if found is None:
                    api._log.line("api", f"{self.command} {url.path} -> 404 (no route)")
                    return self._message(404, "Not Found")
                route, params = found
                authorized = api.authorizer.check(route.key, self.headers.get("Authorization")) if api.authorizer else None
                if isinstance(authorized, tuple):  # API Gateway answers; the function is not called
                    status, answer = authorized
                    api._log.line("api", f"{self.command} {url.path} -> {status} (authorizer)")
                    return self._message(status, answer["message"])
                event = self._event(route, params, url, body)
                if authorized:
                    event["requestContext"]["authorizer"] = authorized
                outcome = route.function.invoke(event)
                if not outcome.ok:
                    status = 503 if outcome.error.get("errorType") == "Sandbox.Timedout" else 500
                    api._log.line("api", f"{self.command} {url.path} -> {status} (function error: {outcome.error})")
                    return self._message(status, "Service Unavailable" if status == 503 else "Internal Server Error")
                status, headers, cookies, payload = to_http(outcome.payload)
                elapsed = (time.monotonic() - started) * 1000
                api._log.line("api", f"{self.command} {url.path} -> {status} ({route.function.tag}, {elapsed:.0f} ms)")
                self._send(status, headers, cookies, payload)

            def _event(self, route: Route, params: dict, url, body: bytes) -> dict[str, Any]:
                headers: dict[str, str] = {}
                for key, value in self.headers.items():
                    key = key.lower()
                    if key == "cookie":
                        continue
                    headers[key] = f"{headers[key]},{value}" if key in headers else value
                query: dict[str, str] = {}
                for key, value in parse_qsl(url.query, keep_blank_values=True):
                    query[key] = f"{query[key]},{value}" if key in query else value
                cookies = [c.strip() for c in (self.headers.get("Cookie") or "").split(";") if c.strip()]
                now = time.time()
                try:
                    text, is_base64 = body.decode("utf-8"), False
                except UnicodeDecodeError:
                    text, is_base64 = base64.b64encode(body).decode(), True
                event: dict[str, Any] = {
                    "version": "2.0",
                    "routeKey": route.key,
                    "rawPath": url.path,
                    "rawQueryString": url.query,
                    "headers": headers,
                    "requestContext": {
                        "accountId": ACCOUNT,
                        "apiId": "local",
                        "domainName": headers.get("host", "127.0.0.1"),
                        "domainPrefix": headers.get("host", "127.0.0.1").split(".")[0],
                        "http": {
                            "method": self.command,
                            "path": url.path,
                            "protocol": self.request_version,
                            "sourceIp": self.client_address[0],
                            "userAgent": headers.get("user-agent", ""),
                        },
                        "requestId": base64.b64encode(uuid.uuid4().bytes[:12]).decode(),
                        "routeKey": route.key,
                        "stage": "$default",
                        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                        "timeEpoch": int(now * 1000),
                    },
                    "isBase64Encoded": is_base64,
                }
                if cookies:
                    event["cookies"] = cookies
                if query:
                    event["queryStringParameters"] = query
                if params:
                    event["pathParameters"] = params
                if body:
                    event["body"] = text
                return event

            def __getattr__(self, name: str):
                # http.server answers a method without a do_<METHOD> with its HTML 501. API
                # Gateway routes every method: one the template lacks gets 404 JSON, like a path.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                # What http.server rejects before routing (a malformed request line, a header too
                # long) is answered in JSON too, never with Python's HTML error page.
                self.close_connection = True
                # Before the request line is understood, http.server assumes HTTP/0.9, which has
                # no status line or headers; answer as HTTP/1.1 does.
                self.request_version = "HTTP/1.1"
                self._message(code, message or HTTPStatus(code).phrase)

        return Handler


def to_http(payload: Any) -> tuple[int, dict[str, str], list[str], bytes]:
    """A payload format 2.0 response as HTTP, with API Gateway's rule for a payload that is not
    a response object: 200 with the payload as a JSON body."""
    if not isinstance(payload, dict) or "statusCode" not in payload:
        return 200, {"Content-Type": "application/json"}, [], json.dumps(payload).encode()
    headers = {str(k): str(v) for k, v in (payload.get("headers") or {}).items()}
    for key, values in (payload.get("multiValueHeaders") or {}).items():
        headers[str(key)] = ",".join(str(v) for v in values)
    body = payload.get("body") or ""
    raw = base64.b64decode(body) if payload.get("isBase64Encoded") else str(body).encode()
    return int(payload["statusCode"]), headers, list(payload.get("cookies") or []), raw
