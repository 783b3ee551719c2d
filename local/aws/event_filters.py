"""Lambda event filtering (FilterCriteria) for stream records: the documented pattern syntax.

A record is kept when any filter's pattern matches it. In a pattern, an object matches an object
field by field, and a list is a set of alternatives for a value: literals (strings, numbers,
booleans, null) and the operators prefix, suffix, equals-ignore-case, anything-but, numeric and
exists. See "Control which events Lambda sends to your function" in the Lambda guide.
"""

from __future__ import annotations

import json
import operator
from typing import Any

_MISSING = object()
_NUMERIC = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def parse_filter_criteria(criteria: dict | None) -> list[dict]:
    """The patterns of a FilterCriteria property ({"Filters": [{"Pattern": "<json>"}]})."""
    patterns = []
    for entry in (criteria or {}).get("Filters", []):
        pattern = entry["Pattern"]
        patterns.append(json.loads(pattern) if isinstance(pattern, str) else pattern)
    return patterns


def accepts(patterns: list[dict], record: dict) -> bool:
    """Whether Lambda would send `record` to the function: no filters, or any pattern matches."""
    return not patterns or any(matches(pattern, record) for pattern in patterns)


def matches(pattern: dict, event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    for key, expected in pattern.items():
        value = event.get(key, _MISSING)
        if isinstance(expected, dict):
            if value is _MISSING or not matches(expected, value):
                return False
        elif isinstance(expected, list):
            if not _any_alternative(expected, value):
                return False
        else:
            raise ValueError(f"filter pattern value for {key!r} must be an object or a list")
    return True


def _any_alternative(alternatives: list, value: Any) -> bool:
    for alternative in alternatives:
        if isinstance(alternative, dict) and "exists" in alternative:
            if (value is not _MISSING) == bool(alternative["exists"]):
                return True
            continue
        if value is _MISSING:
            continue
        values = value if isinstance(value, list) else [value]
        if any(_matches_one(alternative, v) for v in values):
            return True
    return False


def _matches_one(alternative: Any, value: Any) -> bool:
    if not isinstance(alternative, dict):
        return _equal(alternative, value)
    (op, argument), = alternative.items()
    if op == "prefix":
        return isinstance(value, str) and value.startswith(argument)
    if op == "suffix":
        return isinstance(value, str) and value.endswith(argument)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(argument).lower()
    if op == "anything-but":
        excluded = argument if isinstance(argument, list) else [argument]
        return not any(_matches_one(e, value) for e in excluded)
    if op == "numeric":
        number = _number(value)
        if number is None:
            return False
        return all(_NUMERIC[argument[i]](number, argument[i + 1]) for i in range(0, len(argument), 2))
    raise ValueError(f"unsupported filter operator {op!r}")


def _number(value: Any) -> float | None:
    # DynamoDB numbers arrive as strings ({"N": "42"}); Lambda compares them as numbers.
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _equal(expected: Any, value: Any) -> bool:
    if expected is None or isinstance(expected, bool):
        return value is expected
    if isinstance(value, bool):
        return False
    if isinstance(expected, (int, float)):
        return isinstance(value, (int, float)) and value == expected
    return expected == value
