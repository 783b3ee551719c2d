"""template.yaml as the local stack reads it, and its least-privilege promise."""

import json

from local.template import Template, functions

TEMPLATE = Template.load()


def test_tables_are_created_as_declared():
    requests = {r["TableName"]: r for r in TEMPLATE.table_requests()}
    users = requests["UsersTable"]
    assert users["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert users["BillingMode"] == "PAY_PER_REQUEST"
    assert users["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    history = requests["HistoryTable"]
    assert [k["AttributeName"] for k in history["KeySchema"]] == ["userId", "sequenceNumber"]
    assert "StreamSpecification" not in requests["EmailsTable"]


def test_functions_get_their_tables_and_settings():
    specs = {spec.name: spec for spec in functions(TEMPLATE)}
    assert specs["CreateUserFunction"].binary == "create-user"
    assert specs["CreateUserFunction"].environment == {"USERS_TABLE": "UsersTable", "EMAILS_TABLE": "EmailsTable"}
    assert specs["UserStreamFunction"].environment == {"HISTORY_TABLE": "HistoryTable"}
    assert specs["UserStreamFunction"].timeout == 30  # its own Timeout over the Globals' 10
    assert specs["DeleteUserFunction"].timeout == 10


# Actions that support no resource-level permission: only "*" grants them.
ACTIONS_WITHOUT_A_RESOURCE_TYPE = {"dynamodb:ListStreams"}


def test_every_role_names_only_its_own_resources():
    for name, role in TEMPLATE.of_type("AWS::IAM::Role").items():
        props = role["Properties"]
        assert "ManagedPolicyArns" not in props, name
        for policy in props["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if resources == ["*"] and set(actions) <= ACTIONS_WITHOUT_A_RESOURCE_TYPE:
                    continue
                for resource in resources:
                    assert resource != "*", f"{name}: {statement['Action']} on *"
                    assert isinstance(resource, dict), f"{name}: {resource!r} is not a reference to a stack resource"
    # And every function uses one of those roles, so SAM adds none of its own (with "*" in them).
    for name, function in TEMPLATE.of_type("AWS::Serverless::Function").items():
        assert "Fn::GetAtt" in function["Properties"]["Role"], name


def test_every_checkov_skip_says_why():
    for name, resource in TEMPLATE.resources.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert str(skip.get("id", "")).startswith("CKV_"), f"{name}: {skip}"
            assert len(str(skip.get("comment", "")).strip()) > 20, f"{name}: {skip['id']} has no reason"


def test_the_users_data_survives_the_stack_and_can_be_restored():
    for name in ("UsersTable", "EmailsTable", "HistoryTable"):
        table = TEMPLATE.resources[name]
        assert (table.get("DeletionPolicy"), table.get("UpdateReplacePolicy")) == ("Retain", "Retain"), name
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name


def test_the_api_access_log_has_no_personal_data():
    settings = TEMPLATE.resources["UsersApi"]["Properties"]["AccessLogSettings"]
    fields = json.loads(settings["Format"])
    assert {"requestId", "routeKey", "status", "responseLatency", "integrationError"} <= set(fields)
    assert not any(word in settings["Format"] for word in ("body", "email", "sourceIp")), settings["Format"]
    log_group = TEMPLATE.resources[settings["DestinationArn"]["Fn::GetAtt"][0]]
    assert log_group["Properties"]["RetentionInDays"] > 0
