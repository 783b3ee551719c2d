"""The template's IAM policies as the JSON AWS would see once deployed, for policy linters.

Each `AWS::IAM::Role`'s inline policies are rendered with the intrinsic functions resolved to
ARNs of the right shape for the resource they name (a table, its stream, a queue, a bucket, a log group),
in a fixed account and region. The stream label has no colons: real ones do
(`2026-11-22T00:00:00.000`), but parliament misreads an ARN with them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .template import Template, _plain

ACCOUNT = "123456789012"
REGION = "us-east-1"
STREAM_LABEL = "2026-11-22T00-00-00.000"
# !Ref AWS::NoValue: the list item or property is left out.
_NO_VALUE = object()


def _arn(template: Template, name: str, attribute: str) -> str:
    resource_type = template.resources[name]["Type"]
    if resource_type == "AWS::DynamoDB::Table" and attribute == "Arn":
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
    if resource_type == "AWS::DynamoDB::Table" and attribute == "StreamArn":
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}/stream/{STREAM_LABEL}"
    if resource_type == "AWS::SQS::Queue" and attribute == "Arn":
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
    if resource_type == "AWS::S3::Bucket" and attribute == "Arn":
        return f"arn:aws:s3:::{name.lower()}"
    if resource_type == "AWS::Logs::LogGroup" and attribute == "Arn":
        return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{name}:*"
    raise ValueError(f"no ARN shape for {name}.{attribute} ({resource_type})")


def _resolve(template: Template, value: Any) -> Any:
    if isinstance(value, list):
        resolved = [_resolve(template, v) for v in value]
        return [v for v in resolved if v is not _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if value == {"Ref": "AWS::NoValue"}:
        return _NO_VALUE
    if set(value) == {"Ref"} and value["Ref"] in template.parameters:
        return template.parameters[value["Ref"]]
    if set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        return _resolve(template, when_true if template.condition(condition) else when_false)
    if set(value) == {"Fn::Select"}:
        index, items = value["Fn::Select"]
        return _resolve(template, items)[int(index)]
    if set(value) == {"Fn::Split"}:
        separator, text = value["Fn::Split"]
        return _resolve(template, text).split(separator)
    if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], list):
        text, variables = value["Fn::Sub"]
        for name, variable in variables.items():
            text = text.replace("${" + name + "}", str(_resolve(template, variable)))
        return _resolve(template, {"Fn::Sub": text})
    if set(value) == {"Fn::GetAtt"}:
        name, attribute = value["Fn::GetAtt"] if isinstance(value["Fn::GetAtt"], list) else value["Fn::GetAtt"].split(".", 1)
        return _arn(template, name, attribute)
    if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        def substitute(match: re.Match) -> str:
            name, _, attribute = match.group(1).partition(".")
            if name == "AWS::Region":
                return REGION
            if name == "AWS::AccountId":
                return ACCOUNT
            if name == "AWS::Partition":
                return "aws"
            if name in template.parameters:
                return template.parameters[name]
            return _arn(template, name, attribute or "Arn")
        return re.sub(r"\$\{([^}]+)\}", substitute, value["Fn::Sub"])
    return {k: _resolve(template, v) for k, v in value.items()}


def inline_policies(template: Template) -> dict[str, str]:
    """Every inline policy of every role, as `Role/PolicyName` -> policy JSON."""
    policies = {}
    for role, resource in template.of_type("AWS::IAM::Role").items():
        for policy in resource.get("Properties", {}).get("Policies", []):
            document = _resolve(template, _plain(policy["PolicyDocument"]))
            policies[f"{role}/{policy['PolicyName']}"] = json.dumps(document, indent=2)
    for name, resource in template.of_type("AWS::IAM::ManagedPolicy").items():
        document = _resolve(template, _plain(resource["Properties"]["PolicyDocument"]))
        policies[name] = json.dumps(document, indent=2)
    return policies
