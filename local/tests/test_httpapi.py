"""Routes of the local HTTP API come from the template's HttpApi events, matched as API Gateway
matches them, and function responses become HTTP as API Gateway turns them."""

import base64

from local.httpapi import routes_from, to_http
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
