"""A fresh local DynamoDB with the template's tables, for tests and development:

    python -m local.testenv -- cargo test --workspace    # run a command against it
    python -m local.testenv --serve                      # print its variables, serve until stdin closes

Starts moto on a free port and creates the tables of template.yaml. With a command, runs it with
every function's table variables (USERS_TABLE, ...) and the SDK endpoint variables set, then stops
moto whatever happened, and exits with the command's status. With --serve, prints those variables
as one JSON line ({"variables": {...}}) and keeps moto until its standard input closes: the Rust
integration tests use this under a bare `cargo test`, so moto lives exactly as long as they do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .moto import MotoServer
from .template import Template

USAGE = "usage: python -m local.testenv -- COMMAND [ARGS...]  |  python -m local.testenv --serve"


def variables(moto: MotoServer, template: Template) -> dict[str, str]:
    """The SDK's endpoint variables and every function's table variables."""
    env = dict(moto.sdk_environment())
    for function in template.of_type("AWS::Serverless::Function"):
        env.update(template.function_environment(function))
    return env


def main(argv: list[str]) -> int:
    serve = argv == ["--serve"]
    if not serve and ("--" not in argv or argv.index("--") == len(argv) - 1):
        print(USAGE, file=sys.stderr)
        return 2
    template = Template.load()
    with MotoServer() as moto:
        tables = moto.create_tables(template)
        env = variables(moto, template)
        if serve:
            print(json.dumps({"variables": env}), flush=True)
            sys.stdin.read()  # returns when the process that started us closes the pipe or exits
            return 0
        print(f"local DynamoDB at {moto.endpoint} with tables {', '.join(tables)}", flush=True)
        command = argv[argv.index("--") + 1 :]
        return subprocess.call(command, env={**os.environ, **env})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
