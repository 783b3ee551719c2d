"""API Gateway's JWT authorizer of HTTP APIs, emulated locally, and a local issuer of tokens.

- `LocalIssuer`: an RSA key pair kept in .local/issuer/ and its JWKS served over HTTP at
  `<issuer>/.well-known/jwks.json`; `issue(...)` signs a token with the claims asked for.
- `JwtAuthorizer`: checks a request as API Gateway does, with PyJWT (never hand-written
  crypto): the bearer token's signature by its `kid` from the issuer's JWKS, `iss`, `aud` (or
  `client_id`, which API Gateway also accepts), `exp` and `nbf`; then the route's scopes
  against `scope` / `scp`. It answers what API Gateway answers: 401 {"message":"Unauthorized"}
  for a missing or bad token, 403 {"message":"Forbidden"} for a token without the route's
  scope; and gives the function the claims in `requestContext.authorizer.jwt`.

Print a token for the local stack's issuer (scripts/run --auth):

    .venv/bin/python -m local.aws.jwt_authorizer token --scope users/read users/write --sub alice --lifetime 3600
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..template import ROOT

ISSUER_DIR = ROOT / ".local" / "issuer"
# The audience the local stack's authorizer requires (the template's JwtAudience, locally).
LOCAL_AUDIENCE = "users-api-local"
DEFAULT_ISSUER_PORT = 3001

UNAUTHORIZED = (401, {"message": "Unauthorized"})
FORBIDDEN = (403, {"message": "Forbidden"})


class LocalIssuer:
    """A signing key (kept across runs in `directory`, so a printed token stays valid) and the
    HTTP server that publishes its public half as a JWKS."""

    def __init__(self, port: int = DEFAULT_ISSUER_PORT, directory: Path = ISSUER_DIR):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._key, self.kid = _load_or_create_key(directory)
        self._server: ThreadingHTTPServer | None = None

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def jwks(self) -> dict:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def issue(self, sub: str = "local-user", scopes: list[str] | None = None, lifetime: int = 3600,
              audience: str | None = LOCAL_AUDIENCE, issuer: str | None = None, **claims: Any) -> str:
        """A token signed by this issuer. `issuer`/`audience` override iss/aud (None leaves
        the claim out); other claims (nbf, client_id, scp, exp...) are added as given."""
        now = int(time.time())
        payload: dict[str, Any] = {"iss": issuer or self.url, "sub": sub, "iat": now, "exp": now + lifetime,
                                   "jti": str(uuid.uuid4())}
        if audience is not None:
            payload["aud"] = audience
        if scopes:
            payload["scope"] = " ".join(scopes)
        payload.update(claims)
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": self.kid})

    def start(self) -> None:
        issuer = self

        class Jwks(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:
                pass

            def do_GET(self) -> None:
                known = self.path in ("/.well-known/jwks.json",)
                body = json.dumps(issuer.jwks() if known else {"message": "Not Found"}).encode()
                self.send_response(200 if known else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Jwks)
        except OSError as error:
            raise OSError(f"cannot serve the local issuer on port {self.port}: {error.strerror}") from error
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="issuer", daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def _load_or_create_key(directory: Path) -> tuple[rsa.RSAPrivateKey, str]:
    key_file, kid_file = directory / "key.pem", directory / "kid"
    if key_file.exists() and kid_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        return key, kid_file.read_text().strip()
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = uuid.uuid4().hex
    # Written readable by its owner only from the start, and put in place whole (kid first, so a
    # reader that finds the key finds its kid).
    for path, content in ((kid_file, kid.encode()), (key_file, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))):
        partial = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(content)
        os.replace(partial, path)
    return key, kid


@dataclass
class JwtAuthorizer:
    """The authorizer of an HTTP API: who issues the tokens, for which audience, and the scopes
    each route needs (`"POST /create" -> ["users/write"]`); routes not named need no token."""

    issuer: str
    audience: str
    jwks_url: str
    route_scopes: dict[str, list[str]]

    def __post_init__(self) -> None:
        self._keys = jwt.PyJWKClient(self.jwks_url, cache_keys=True, lifespan=300)

    def check(self, route_key: str, authorization: str | None) -> tuple[int, dict] | dict | None:
        """None when the route needs no token; else the `requestContext.authorizer` to pass on
        (a dict), or the (status, body) API Gateway answers instead of calling the function."""
        if route_key not in self.route_scopes:
            return None
        token = (authorization or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            return UNAUTHORIZED
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token, key.key, algorithms=["RS256"], issuer=self.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except (jwt.PyJWTError, jwt.PyJWKClientError, ValueError, TypeError):
            return UNAUTHORIZED
        # API Gateway's rule: `aud` must name the audience; only a token without `aud` may name
        # it in `client_id` instead (as Cognito's access tokens do).
        if "aud" in claims:
            audiences = claims["aud"]
            audiences = [audiences] if isinstance(audiences, str) else audiences
            if not isinstance(audiences, list) or self.audience not in audiences:
                return UNAUTHORIZED
        elif claims.get("client_id") != self.audience:
            return UNAUTHORIZED
        granted = _scopes(claims)
        if granted is None:
            return UNAUTHORIZED
        needed = self.route_scopes[route_key]
        if needed and not set(needed) & set(granted):  # a route without scopes takes any valid token
            return FORBIDDEN
        return {"jwt": {"claims": {name: _claim_text(value) for name, value in claims.items()}, "scopes": granted}}


def _scopes(claims: dict) -> list[str] | None:
    """The token's scopes from `scope` (space-separated) or `scp` (a list or a string); None
    when the claim is there but of no such shape."""
    scopes = claims.get("scope", claims.get("scp", []))
    if isinstance(scopes, str):
        return scopes.split()
    if isinstance(scopes, list) and all(isinstance(s, str) for s in scopes):
        return scopes
    return None


def _claim_text(value: Any) -> str:
    """API Gateway passes every claim as a string; a list as `[a b]`."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(v) for v in value) + "]"
    if isinstance(value, (bool, dict)) or value is None:
        return json.dumps(value)
    return str(value)


def route_scopes(definition_body: dict) -> dict[str, list[str]]:
    """Each route's scopes from the API's OpenAPI body, as the template declares them when a
    token is required (the first branch of its `Fn::If`)."""
    scopes: dict[str, list[str]] = {}
    for path, operations in (definition_body or {}).get("paths", {}).items():
        for method, operation in operations.items():
            security = operation.get("security") if isinstance(operation, dict) else None
            if isinstance(security, dict) and "Fn::If" in security:
                security = security["Fn::If"][1]
            for requirement in security or []:
                for names in requirement.values():
                    scopes.setdefault(f"{method.upper()} {path}", []).extend(str(n) for n in names)
    return scopes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.aws.jwt_authorizer", description="The local issuer of tokens.")
    sub = parser.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token", help="print a token signed by the local stack's issuer (scripts/run --auth)")
    token.add_argument("--scope", nargs="*", default=["users/read", "users/write"], help="default: users/read users/write")
    token.add_argument("--sub", default="local-user", help="the caller's subject (default local-user)")
    token.add_argument("--lifetime", type=int, default=3600, help="seconds until it expires (default 3600)")
    token.add_argument("--issuer-port", type=int, default=DEFAULT_ISSUER_PORT, help=f"the stack's --issuer-port (default {DEFAULT_ISSUER_PORT})")
    args = parser.parse_args(argv)
    print(LocalIssuer(args.issuer_port).issue(sub=args.sub, scopes=args.scope, lifetime=args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
