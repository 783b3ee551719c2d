"""template.yaml as the one source of truth for local resources.

Reads the SAM template with cfn-lint's loader (which understands !Ref, !GetAtt and !Sub) and
derives from it what a local environment needs: the CreateTable requests for every
AWS::DynamoDB::Table, and each function's environment with !Ref to a table resolved to the
local table name (the logical id) and !Ref to a queue to its local URL.

Parameters take their defaults, except LOCAL_PARAMETERS: locally the stack sends welcome emails
(through moto's SES) unless told otherwise. Conditions are evaluated from them, and a resource
whose condition is false does not exist locally, as it would not on AWS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


def target_dir() -> Path:
    """Where cargo puts what it builds: `cargo metadata`'s answer, which honours
    CARGO_TARGET_DIR and `build.target-dir` (target/ when neither is set)."""
    import json
    import subprocess

    try:
        metadata = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                                  capture_output=True, text=True, check=True, timeout=60)
        return Path(json.loads(metadata.stdout)["target_directory"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return ROOT / "target"

# CreateTable accepts these Properties of AWS::DynamoDB::Table as they are written in the
# template (the CloudFormation and API shapes agree on them).
_SAME_SHAPE = ("AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput")
# What the local stack (and the tests' environment) sets: a sender, so the welcome queue, its
# function and its table exist; moto's SES has it verified at start.
LOCAL_SENDER = "welcome@example.com"
# X-Ray on, so the linters see the policies it adds (locally nothing traces).
LOCAL_PARAMETERS = {"WelcomeSender": LOCAL_SENDER, "XRayTracing": "true"}
# What the pseudo parameters are locally (the stack is called "local").
LOCAL_PSEUDO_PARAMETERS = {"AWS::StackName": "local", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
                           "AWS::Partition": "aws"}


@dataclass
class Template:
    resources: dict[str, Any]
    globals: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    conditions: dict[str, Any] = field(default_factory=dict)
    # What !Ref of a resource is locally, where it is not the logical id (a queue's URL).
    refs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = TEMPLATE, parameters: dict[str, str] | None = None) -> "Template":
        """The template with its parameters' defaults, overridden by `parameters` (by default
        LOCAL_PARAMETERS; {} for the template exactly as deployed without any)."""
        parsed, errors = decode(str(path))
        if errors or parsed is None:
            raise ValueError(f"cannot read {path}: {errors}")
        values = {str(name): str(spec.get("Default", "")) for name, spec in parsed.get("Parameters", {}).items()}
        overrides = LOCAL_PARAMETERS if parameters is None else parameters
        unknown = set(overrides) - set(values)
        if unknown:
            raise ValueError(f"no such parameter(s) in {path}: {sorted(unknown)}")
        values.update(overrides)
        return cls(parsed.get("Resources", {}), parsed.get("Globals", {}), values, parsed.get("Conditions", {}))

    def condition(self, name: str) -> bool:
        """A condition of the template, evaluated with the parameters."""
        return bool(self._evaluate(self.conditions[name]))

    def exists(self, name: str) -> bool:
        """Whether a resource exists with these parameters (its Condition, if any, holds)."""
        condition = self.resources[name].get("Condition")
        return condition is None or self.condition(str(condition))

    def _evaluate(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            [(function, args)] = value.items()
            if function == "Fn::Equals":
                return self._evaluate(args[0]) == self._evaluate(args[1])
            if function == "Fn::Not":
                return not self._evaluate(args[0])
            if function == "Fn::Or":
                return any(self._evaluate(arg) for arg in args)
            if function == "Fn::And":
                return all(self._evaluate(arg) for arg in args)
            if function == "Condition":
                return self.condition(str(args))
            if function == "Ref" and args in self.parameters:
                return self.parameters[args]
        if isinstance(value, (str, int, float, bool)):
            return value
        raise ValueError(f"cannot evaluate {value!r} locally")

    @staticmethod
    def load_outputs(path: Path = TEMPLATE) -> dict[str, Any]:
        """The template's Outputs."""
        parsed, errors = decode(str(path))
        if errors or parsed is None:
            raise ValueError(f"cannot read {path}: {errors}")
        return parsed.get("Outputs", {})

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """The resources of a type that exist with these parameters."""
        return {
            name: resource
            for name, resource in self.resources.items()
            if resource.get("Type") == resource_type and self.exists(name)
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
        """A template value as a local string: !Ref of a parameter is its value, of a resource
        its logical id (the local physical name of tables and buckets) unless `refs` says
        otherwise (a queue's URL); !If picks by its condition."""
        if isinstance(value, (str, int, float)):
            return str(value)
        if isinstance(value, dict) and set(value) == {"Ref"}:
            name = str(value["Ref"])
            if name in LOCAL_PSEUDO_PARAMETERS:
                return LOCAL_PSEUDO_PARAMETERS[name]
            if name in self.parameters:
                return self.parameters[name]
            return self.refs.get(name, name)
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            condition, when_true, when_false = value["Fn::If"]
            return self.resolve(when_true if self.condition(str(condition)) else when_false)
        if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}!]+)\}", lambda match: self.resolve({"Ref": match.group(1)}), value["Fn::Sub"])
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
