"""Routes of the local HTTP API come from the template's HttpApi events, matched as API Gateway
matches them, and function responses become HTTP as API Gateway turns them."""

import base64
import http.client
import io
import json
import socket

from local.aws.http_api import HttpApi, routes_from, to_http
from local.processes import Log
from local.template import Template, functions


class Fn:
    def __init__(self, name):
        self.name = self.tag = name


def route_for(routes, method, path):
    for route in routes:
        params = route.match(method, path)
        if params is not None:
            return route.function.name, route.key, params
    return None


def test_the_templates_routes_are_served():
    specs = functions(Template.load())
    routes = routes_from({Fn(s.name): s.events for s in specs})
    assert route_for(routes, "POST", "/create") == ("CreateUserFunction", "POST /create", {})
    assert route_for(routes, "POST", "/delete") == ("DeleteUserFunction", "POST /delete", {})
    assert route_for(routes, "GET", "/create") is None
    assert route_for(routes, "POST", "/users") is None


def test_a_new_route_needs_no_change_to_the_runner():
    events = {
        Fn("Get"): {"E": {"Type": "HttpApi", "Properties": {"Path": "/users/{id}", "Method": "get"}}},
        Fn("Exact"): {"E": {"Type": "HttpApi", "Properties": {"Path": "/users/me", "Method": "GET"}}},
        Fn("Files"): {"E": {"Type": "HttpApi", "Properties": {"Path": "/files/{proxy+}", "Method": "ANY"}}},
        Fn("Fallback"): {"E": {"Type": "HttpApi"}},
        Fn("Stream"): {"E": {"Type": "DynamoDB", "Properties": {}}},
    }
    routes = routes_from(events)
    assert route_for(routes, "GET", "/users/42") == ("Get", "GET /users/{id}", {"id": "42"})
    assert route_for(routes, "GET", "/users/me") == ("Exact", "GET /users/me", {})
    assert route_for(routes, "DELETE", "/files/a/b.txt") == ("Files", "ANY /files/{proxy+}", {"proxy": "a/b.txt"})
    assert route_for(routes, "POST", "/anything/else") == ("Fallback", "$default", {})
    assert [r.function.name for r in routes].count("Stream") == 0


def test_responses_become_http_as_api_gateway_makes_them():
    status, headers, cookies, body = to_http(
        {"statusCode": 201, "headers": {"content-type": "application/json"}, "cookies": ["a=1"], "body": '{"ok":true}'}
    )
    assert (status, headers, cookies, body) == (201, {"content-type": "application/json"}, ["a=1"], b'{"ok":true}')
    binary = to_http({"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True})
    assert binary[3] == b"\x00\x01"
    # A payload that is not a response object is a 200 with the payload as JSON.
    assert to_http({"hello": "world"}) == (200, {"Content-Type": "application/json"}, [], b'{"hello": "world"}')


def raw_request(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends bytes as they are (any method, even a malformed line) and reads the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock, method=request.split(b" ")[0].decode())
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def test_any_method_or_path_the_template_does_not_route_gets_api_gateways_json_404():
    routes = routes_from({Fn("Create"): {"E": {"Type": "HttpApi", "Properties": {"Path": "/create", "Method": "POST"}}}})
    api = HttpApi(routes, "127.0.0.1", 0, Log(io.StringIO()))
    api.start()
    try:
        for method in ("TRACE", "OPTIONS", "PATCH", "PUT", "DELETE", "GET", "HEAD", "PROPFIND", "BREW"):
            for path in ("/create", "/nowhere"):
                status, headers, body = raw_request(api.port, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
                assert (status, headers["content-type"]) == (404, "application/json"), (method, path)
                if method != "HEAD":
                    assert json.loads(body) == {"message": "Not Found"}, (method, path)
        status, headers, _ = raw_request(api.port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        assert (status, headers["content-type"]) == (404, "application/json")
        # What the server cannot even parse is answered in JSON too, not with an HTML page.
        status, headers, body = raw_request(api.port, b"NOT A REQUEST LINE AT ALL\r\n\r\n")
        assert (status, headers["content-type"]) == (400, "application/json")
        assert "message" in json.loads(body)
    finally:
        api.stop()
