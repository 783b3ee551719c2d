"""The local JWT authorizer's rules on their own (PyJWT against a local issuer's JWKS): what API
Gateway answers for each kind of token. test_auth.py runs them through the local stack."""

from __future__ import annotations

import time

import pytest

from local.aws.jwt_authorizer import FORBIDDEN, UNAUTHORIZED, JwtAuthorizer, LocalIssuer, _claim_text
from local.aws.moto import free_port

ROUTES = {"POST /create": ["users/write"], "GET /users/{id}": ["users/read"]}


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    running = LocalIssuer(free_port(), directory=tmp_path_factory.mktemp("issuer"))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def authorizer(issuer):
    return JwtAuthorizer(issuer.url, "users-api-local", issuer.jwks_url, ROUTES)


def test_routes_without_scopes_need_no_token(authorizer):
    assert authorizer.check("GET /health", None) is None


def test_bad_tokens_are_401(issuer, authorizer, tmp_path):
    impostor = LocalIssuer(issuer.port, directory=tmp_path / "impostor")
    impostor.kid = issuer.kid
    for case, header in {
        "missing": None,
        "blank": "Bearer ",
        "not a JWT": "Bearer abc",
        "wrong signature": "Bearer " + impostor.issue(scopes=["users/write"]),
        "expired": "Bearer " + issuer.issue(scopes=["users/write"], lifetime=-1),
        "not yet valid": "Bearer " + issuer.issue(scopes=["users/write"], nbf=int(time.time()) + 120),
        "other issuer": "Bearer " + issuer.issue(scopes=["users/write"], issuer="https://elsewhere"),
        "other audience": "Bearer " + issuer.issue(scopes=["users/write"], audience="another-api"),
        "no exp": "Bearer " + issuer.issue(scopes=["users/write"], exp=None),
        # client_id counts only when there is no aud (API Gateway's rule)
        "other aud, right client_id": "Bearer " + issuer.issue(scopes=["users/write"], audience="another-api",
                                                               client_id="users-api-local"),
        "scope of no shape": "Bearer " + issuer.issue(scope=5),
        "aud of no shape": "Bearer " + issuer.issue(scopes=["users/write"], audience=None, aud=5),
    }.items():
        assert authorizer.check("POST /create", header) == UNAUTHORIZED, case


def test_a_token_without_the_routes_scope_is_403(issuer, authorizer):
    assert authorizer.check("POST /create", "Bearer " + issuer.issue(scopes=["users/read"])) == FORBIDDEN
    assert authorizer.check("GET /users/{id}", "Bearer " + issuer.issue(scopes=[])) == FORBIDDEN


def test_a_good_token_passes_its_claims_as_api_gateway_does(issuer, authorizer):
    token = issuer.issue(sub="alice", scopes=["users/read", "users/write"])
    for header in (f"Bearer {token}", f"bearer {token}", token):  # API Gateway takes it with or without the prefix
        context = authorizer.check("POST /create", header)
        assert context["jwt"]["claims"]["sub"] == "alice"
        assert context["jwt"]["scopes"] == ["users/read", "users/write"]
        assert all(isinstance(value, str) for value in context["jwt"]["claims"].values())
    # client_id stands in for aud; scp for scope.
    service = issuer.issue(sub="svc", audience=None, client_id="users-api-local", scp=["users/read"])
    assert authorizer.check("GET /users/{id}", service)["jwt"]["scopes"] == ["users/read"]


def test_a_route_without_scopes_takes_any_valid_token(issuer):
    open_route = JwtAuthorizer(issuer.url, "users-api-local", issuer.jwks_url, {"GET /ping": []})
    assert open_route.check("GET /ping", issuer.issue(scopes=[]))["jwt"]["claims"]["sub"] == "local-user"
    assert open_route.check("GET /ping", None) == UNAUTHORIZED


def test_claims_are_strings_as_api_gateway_passes_them():
    assert _claim_text(True) == "true"
    assert _claim_text(1700000000) == "1700000000"
    assert _claim_text(["a", "b"]) == "[a b]"
    assert _claim_text("x") == "x"
