"""FilterCriteria patterns, as Lambda documents them for DynamoDB stream records."""

import pytest

from local.aws.event_filters import accepts, matches, parse_filter_criteria

RECORD = {
    "eventName": "INSERT",
    "dynamodb": {
        "Keys": {"id": {"S": "u1"}},
        "NewImage": {
            "id": {"S": "u1"},
            "email": {"S": "Ann@Example.com"},
            "timestamp": {"N": "1520547428623"},
            "tags": {"L": [{"S": "a"}]},
        },
    },
}


def test_no_filters_accept_everything():
    assert accepts([], RECORD)


def test_filters_are_alternatives():
    criteria = {"Filters": [{"Pattern": '{"eventName": ["REMOVE"]}'}, {"Pattern": '{"eventName": ["INSERT"]}'}]}
    assert accepts(parse_filter_criteria(criteria), RECORD)
    only_remove = parse_filter_criteria({"Filters": [{"Pattern": '{"eventName": ["REMOVE"]}'}]})
    assert not accepts(only_remove, RECORD)


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ({"eventName": ["INSERT", "MODIFY"]}, True),
        ({"eventName": ["MODIFY"]}, False),
        ({"dynamodb": {"NewImage": {"email": {"S": [{"prefix": "Ann@"}]}}}}, True),
        ({"dynamodb": {"NewImage": {"email": {"S": [{"prefix": "ann@"}]}}}}, False),
        ({"dynamodb": {"NewImage": {"email": {"S": [{"suffix": ".com"}]}}}}, True),
        ({"dynamodb": {"NewImage": {"email": {"S": [{"equals-ignore-case": "ann@example.COM"}]}}}}, True),
        ({"eventName": [{"anything-but": ["REMOVE"]}]}, True),
        ({"eventName": [{"anything-but": "INSERT"}]}, False),
        ({"eventName": [{"anything-but": {"prefix": "INS"}}]}, False),
        ({"dynamodb": {"NewImage": {"timestamp": {"N": [{"numeric": [">", 0, "<=", 1520547428623]}]}}}}, True),
        ({"dynamodb": {"NewImage": {"timestamp": {"N": [{"numeric": ["<", 100]}]}}}}, False),
        ({"dynamodb": {"OldImage": [{"exists": False}]}}, True),
        ({"dynamodb": {"NewImage": [{"exists": True}]}}, True),
        ({"dynamodb": {"OldImage": [{"exists": True}]}}, False),
        ({"dynamodb": {"OldImage": {"email": {"S": ["x"]}}}}, False),  # missing object
        ({"dynamodb": {"NewImage": {"tags": {"L": {"S": ["a"]}}}}}, False),  # L is a list, not an object
        ({"eventName": ["INSERT"], "dynamodb": {"Keys": {"id": {"S": ["u2"]}}}}, False),  # all fields must match
    ],
)
def test_pattern_syntax(pattern, expected):
    assert matches(pattern, RECORD) is expected


def test_literals_match_by_type():
    assert matches({"n": [5]}, {"n": 5})
    assert not matches({"n": [5]}, {"n": "5"})
    assert matches({"b": [True]}, {"b": True})
    assert not matches({"b": [True]}, {"b": 1})
    assert matches({"x": [None]}, {"x": None})
    assert matches({"xs": ["b"]}, {"xs": ["a", "b"]})  # any element of an array


def test_unknown_operators_are_refused():
    with pytest.raises(ValueError):
        matches({"eventName": [{"wildcard": "IN*"}]}, RECORD)
