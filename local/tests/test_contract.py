"""The API contract: openapi.yaml, the template's routes and the Postman collection describe one
API, and the running local stack keeps it. schemathesis (from the spec) and newman (the
collection) run against a stack started here; any failed check or assertion fails the test."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from local.harness import RunningStack
from local.aws.jwt_authorizer import LocalIssuer
from local.aws.moto import free_port
from local.template import ROOT, Template, functions

SPEC = yaml.safe_load((ROOT / "openapi.yaml").read_text())
POSTMAN = ROOT / "postman"
COLLECTION = json.loads((POSTMAN / "users-api.postman_collection.json").read_text())
NEWMAN = POSTMAN / "node_modules" / ".bin" / "newman"

# API Gateway answers a method that no route has with 404 {"message":"Not Found"} (as for an
# unknown path), and so does the local stack. schemathesis' unsupported_method check expects
# 405 there, which no spec can declare for operations it does not have, so that one check is off.
EXCLUDED_CHECKS = "unsupported_method"


def spec_operations() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in SPEC["paths"].items() for method in item if method != "parameters"}


def template_routes() -> set[tuple[str, str]]:
    routes = set()
    for spec in functions(Template.load()):
        for event in spec.events.values():
            if event.get("Type") == "HttpApi":
                routes.add((str(event["Properties"]["Method"]).upper(), str(event["Properties"]["Path"])))
    return routes


def spec_path_of(path: str) -> str:
    """The spec's path that a concrete one (`/users/{{userId}}`, `/users/0000...`) matches."""
    for template in SPEC["paths"]:
        if re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)), path):
            return template
    return path


def collection_requests(items=None) -> list[tuple[str, str, list[int]]]:
    """Every request of the collection: method, path and the statuses its tests assert."""
    found = []
    for item in COLLECTION["item"] if items is None else items:
        if "item" in item:
            found += collection_requests(item["item"])
            continue
        request = item["request"]
        path = spec_path_of("/" + "/".join(request["url"]["path"]))
        script = "\n".join(line for event in item.get("event", []) if event["listen"] == "test" for line in event["script"]["exec"])
        statuses = [int(s) for s in re.findall(r"to\.have\.status\((\d{3})\)", script)]
        found.append((request["method"], path, statuses))
    return found


def without_security(spec: dict) -> dict:
    """The spec of the open API: no security scheme, no operation requiring one."""
    open_spec = json.loads(json.dumps(spec))
    open_spec["components"].pop("securitySchemes", None)
    for item in open_spec["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    return open_spec


def test_every_operation_requires_the_scope_the_template_gives_its_route():
    from local.aws.jwt_authorizer import route_scopes

    template_scopes = route_scopes(Template.load().resources["UsersApi"]["Properties"]["DefinitionBody"])
    spec_scopes = {f"{method.upper()} {path}": [scope for requirement in operation["security"] for scope in requirement["UsersJwt"]]
                   for path, item in SPEC["paths"].items() for method, operation in item.items() if method != "parameters"}
    assert spec_scopes == template_scopes
    # And the API's body names exactly the routes the functions' events make.
    assert set(template_scopes) == {f"{method} {path}" for method, path in template_routes()}
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_the_spec_and_the_template_have_the_same_routes():
    assert spec_operations() == template_routes()


def test_the_collection_calls_every_operation_and_asserts_only_declared_statuses():
    requests = collection_requests()
    assert {(method, path) for method, path, _ in requests} == spec_operations()
    for method, path, statuses in requests:
        assert len(statuses) == 1, f"{method} {path}: each request asserts its status once"
        declared = SPEC["paths"][path][method.lower()]["responses"]
        assert str(statuses[0]) in declared, f"{method} {path} expects {statuses[0]}, which openapi.yaml does not declare"


def test_every_error_response_is_a_message():
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    if "$ref" in response:
                        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


@pytest.fixture(scope="module", params=["open", "auth"])
def stack(request, tmp_path_factory):
    """The local stack in both of the template's modes: open (no JwtIssuer, the seed lesson) and
    behind the JWT authorizer (`--auth`), where the clients send a token with both scopes."""
    issuer_port = free_port() if request.param == "auth" else None
    running = RunningStack(tmp_path_factory.mktemp(f"contract-{request.param}") / "stack.log", free_port(), free_port(),
                           issuer_port=issuer_port)
    running.token = LocalIssuer(issuer_port).issue(sub="contract", scopes=["users/read", "users/write"]) if issuer_port else ""
    yield running
    running.stop()


def run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    print(result.stdout[-20000:], result.stderr[-5000:])
    assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout[-20000:]}\n{result.stderr[-5000:]}"


def test_the_postman_collection_passes_against_the_local_stack(stack):
    # First, on a fresh stack: the lesson registers test@test.com, which must be free.
    run([str(NEWMAN), "run", str(POSTMAN / "users-api.postman_collection.json"),
         "--environment", str(POSTMAN / "local.postman_environment.json"),
         "--env-var", f"baseUrl={stack.url}", "--env-var", f"token={stack.token}", "--color", "off"], cwd=POSTMAN)


def test_schemathesis_finds_nothing_against_the_local_stack(stack, tmp_path):
    # The spec describes the API behind its authorizer. Open (no issuer), the same API needs no
    # token: its contract is the spec without the security requirements, which is what
    # schemathesis checks then (with them, it would rightly expect 401s the open API never sends).
    spec = ROOT / "openapi.yaml"
    auth = ["-H", f"Authorization: Bearer {stack.token}"] if stack.token else []
    if not stack.token:
        spec = tmp_path / "openapi-open.yaml"
        spec.write_text(yaml.safe_dump(without_security(SPEC), sort_keys=False))
    run([str(Path(sys.executable).with_name("schemathesis")), "run", str(spec),
         "--url", stack.url, "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS, *auth,
         "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "50", "--seed", "20261125",
         "--generation-database", "none", "--no-color"], cwd=tmp_path)
