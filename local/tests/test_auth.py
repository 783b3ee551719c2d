"""The API behind its JWT authorizer, as `scripts/run --auth` runs it: every route needs a valid
bearer token from the issuer, for the audience, with the route's scope; API Gateway's answers
otherwise. Against the real functions, with a local issuer and PyJWT.
"""

from __future__ import annotations

import time

import pytest

from local.harness import RunningStack
from local.aws.jwt_authorizer import LOCAL_AUDIENCE, LocalIssuer, route_scopes
from local.aws.moto import free_port
from local.template import Template

UNAUTHORIZED = (401, {"message": "Unauthorized"})
FORBIDDEN = (403, {"message": "Forbidden"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    issuer_port = free_port()
    running = RunningStack(tmp_path_factory.mktemp("auth") / "stack.log", free_port(), free_port(), issuer_port=issuer_port)
    running.issuer = LocalIssuer(issuer_port)  # the same key the stack signs with (.local/issuer)
    yield running
    assert running.stop() == 0


def test_the_template_gives_reads_and_writes_their_scopes():
    body = Template.load().resources["UsersApi"]["Properties"]["DefinitionBody"]
    assert route_scopes(body) == {
        "POST /create": ["users/write"], "POST /delete": ["users/write"], "PATCH /users/{id}": ["users/write"],
        "GET /users/{id}": ["users/read"], "GET /users/{id}/history": ["users/read"],
    }


def test_every_bad_token_is_a_401_and_the_function_is_not_called(stack, tmp_path):
    issuer = stack.issuer
    other = LocalIssuer(stack.issuer_port, directory=tmp_path / "other")
    other.kid = issuer.kid  # another key claiming to be the issuer's
    now = int(time.time())
    body = {"email": "never@test.com"}
    bad = {
        "missing": None,
        "empty": "",
        "malformed": "not.a.token",
        "wrongly signed": other.issue(scopes=["users/write"]),
        "unknown key": LocalIssuer(stack.issuer_port, directory=tmp_path / "third").issue(scopes=["users/write"]),
        "expired": issuer.issue(scopes=["users/write"], lifetime=-60),
        "not yet valid": issuer.issue(scopes=["users/write"], nbf=now + 300),
        "wrong issuer": issuer.issue(scopes=["users/write"], issuer="https://issuer.example.com"),
        "wrong audience": issuer.issue(scopes=["users/write"], audience="someone-else"),
        "no audience": issuer.issue(scopes=["users/write"], audience=None),
        "other audience, our client_id": issuer.issue(scopes=["users/write"], audience="someone-else",
                                                      client_id=LOCAL_AUDIENCE),
    }
    before = stack.output().count("[create-user]")
    for case, token in bad.items():
        assert stack.call("POST", "/create", body, token=token) == UNAUTHORIZED, case
    # API Gateway answered; the function never saw these requests.
    assert stack.output().count("[create-user]") == before
    assert stack.call("GET", "/users/4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e") == UNAUTHORIZED


def test_a_token_without_the_routes_scope_is_a_403(stack):
    reader = stack.issuer.issue(sub="reader", scopes=["users/read"])
    writer = stack.issuer.issue(sub="writer", scopes=["users/write"])
    nobody = stack.issuer.issue(sub="nobody", scopes=[])
    assert stack.call("POST", "/create", {"email": "reader@test.com"}, token=reader) == FORBIDDEN
    assert stack.call("POST", "/create", {"email": "nobody@test.com"}, token=nobody) == FORBIDDEN
    assert stack.call("GET", "/users/4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e", token=writer) == FORBIDDEN


def test_a_good_token_reaches_every_route_and_the_function_logs_its_subject_never_the_token(stack):
    token = stack.issuer.issue(sub="alice", scopes=["users/read", "users/write"])
    status, user = stack.call("POST", "/create", {"email": "alice@test.com"}, token=token)
    assert status == 201, user
    path = f"/users/{user['id']}"
    assert stack.call("GET", path, token=token) == (200, user)
    status, renamed = stack.call("PATCH", path, {"email": "alice2@test.com"}, token=token)
    assert (status, renamed) == (200, {**user, "email": "alice2@test.com"})
    assert stack.call("GET", f"{path}/history", token=token)[0] == 200
    assert stack.call("POST", "/delete", {"id": user["id"]}, token=token) == (200, renamed)
    # `scp` as a list and `client_id` for the audience, as API Gateway accepts them.
    service = stack.issuer.issue(sub="service", audience=None, client_id=LOCAL_AUDIENCE, scp=["users/read"])
    assert stack.call("GET", path, token=service)[0] == 404

    stack.wait_for_output('caller=alice')
    stack.wait_for_output('caller=service')
    output = stack.output()
    assert token not in output and service not in output
