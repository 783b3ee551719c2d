"""template.yaml as the one source of truth for local resources.

Reads the SAM template with cfn-lint's loader (which understands !Ref, !GetAtt and !Sub) and
derives from it what a local environment needs: the CreateTable requests for every
AWS::DynamoDB::Table, and each function's environment with !Ref to a table resolved to the
local table name (the logical id).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"

# CreateTable accepts these Properties of AWS::DynamoDB::Table as they are written in the
# template (the CloudFormation and API shapes agree on them).
_SAME_SHAPE = ("AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput")


@dataclass
class Template:
    resources: dict[str, Any]
    globals: dict[str, Any]

    @classmethod
    def load(cls, path: Path = TEMPLATE) -> "Template":
        parsed, errors = decode(str(path))
        if errors or parsed is None:
            raise ValueError(f"cannot read {path}: {errors}")
        return cls(parsed.get("Resources", {}), parsed.get("Globals", {}))

    @staticmethod
    def load_outputs(path: Path = TEMPLATE) -> dict[str, Any]:
        """The template's Outputs."""
        parsed, errors = decode(str(path))
        if errors or parsed is None:
            raise ValueError(f"cannot read {path}: {errors}")
        return parsed.get("Outputs", {})

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            name: resource
            for name, resource in self.resources.items()
            if resource.get("Type") == resource_type
        }

    def table_requests(self) -> list[dict[str, Any]]:
        """One CreateTable request per table, named by its logical id."""
        requests = []
        for name, resource in self.of_type("AWS::DynamoDB::Table").items():
            props = resource.get("Properties", {})
            request: dict[str, Any] = {"TableName": name}
            for key in _SAME_SHAPE:
                if key in props:
                    request[key] = _plain(props[key])
            if "StreamSpecification" in props:
                view_type = props["StreamSpecification"]["StreamViewType"]
                request["StreamSpecification"] = {
                    "StreamEnabled": True,
                    "StreamViewType": view_type,
                }
            for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if key in props:
                    request[key] = _plain(props[key])
            requests.append(request)
        return requests

    def function_environment(self, function: str) -> dict[str, str]:
        """A function's environment variables (Globals first), with !Ref resolved locally."""
        merged: dict[str, Any] = {}
        for source in (
            self.globals.get("Function", {}),
            self.resources[function].get("Properties", {}),
        ):
            merged.update(source.get("Environment", {}).get("Variables", {}))
        return {key: self.resolve(value) for key, value in merged.items()}

    def resolve(self, value: Any) -> str:
        """A template value as a local string: !Ref of a resource is its logical id, which is
        the local physical name of tables and queues."""
        if isinstance(value, (str, int, float)):
            return str(value)
        if isinstance(value, dict) and set(value) == {"Ref"}:
            return str(value["Ref"])
        raise ValueError(f"cannot resolve {value!r} locally")


def _plain(value: Any) -> Any:
    """cfn-lint's nodes (subclasses of dict, list and str) as the plain types boto3 expects."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


@dataclass
class FunctionSpec:
    """What the local stack needs to know of an AWS::Serverless::Function."""

    name: str
    binary: str
    environment: dict[str, str]
    timeout: float
    memory_mb: int
    events: dict[str, dict[str, Any]]
    logging: dict[str, str]

    def log_environment(self) -> dict[str, str]:
        """The variables Lambda sets from LoggingConfig: with LogFormat JSON, the format and the
        application log level (Text format has no levels)."""
        if self.logging.get("LogFormat", "Text") != "JSON":
            return {}
        env = {"AWS_LAMBDA_LOG_FORMAT": "JSON"}
        if "ApplicationLogLevel" in self.logging:
            env["AWS_LAMBDA_LOG_LEVEL"] = self.logging["ApplicationLogLevel"]
        return env


def functions(template: Template) -> list[FunctionSpec]:
    """Every function built with cargo-lambda, with Globals applied."""
    defaults = template.globals.get("Function", {})
    specs = []
    for name, resource in template.of_type("AWS::Serverless::Function").items():
        props = resource.get("Properties", {})
        build = resource.get("Metadata", {}).get("BuildProperties", {})
        binary = build.get("Binary")
        if not binary:
            raise ValueError(f"{name}: Metadata.BuildProperties.Binary names no binary")
        specs.append(
            FunctionSpec(
                name=name,
                binary=str(binary),
                environment=template.function_environment(name),
                timeout=float(props.get("Timeout", defaults.get("Timeout", 3))),
                memory_mb=int(props.get("MemorySize", defaults.get("MemorySize", 128))),
                events={str(k): _plain(v) for k, v in props.get("Events", {}).items()},
                logging={
                    str(k): str(v)
                    for k, v in {**defaults.get("LoggingConfig", {}), **props.get("LoggingConfig", {})}.items()
                },
            )
        )
    return specs
