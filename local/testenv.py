"""Runs a command against a fresh local DynamoDB with the template's tables:

    python -m local.testenv -- cargo test --workspace

Starts moto on a free port, creates the tables of template.yaml, runs the command with every
function's table variables (USERS_TABLE, ...) and the SDK endpoint variables set, then stops
moto whatever happened. Exits with the command's status.
"""

from __future__ import annotations

import os
import subprocess
import sys

from .moto import MotoServer
from .template import Template


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: python -m local.testenv -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    command = argv[argv.index("--") + 1 :]
    template = Template.load()
    with MotoServer() as moto:
        tables = moto.create_tables(template)
        env = {**os.environ, **moto.sdk_environment()}
        for function in template.of_type("AWS::Serverless::Function"):
            env.update(template.function_environment(function))
        print(f"local DynamoDB at {moto.endpoint} with tables {', '.join(tables)}", flush=True)
        return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
