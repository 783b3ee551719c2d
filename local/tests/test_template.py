"""template.yaml as the local stack reads it, and its least-privilege promise."""

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


def test_every_role_names_only_its_own_resources():
    for name, role in TEMPLATE.of_type("AWS::IAM::Role").items():
        props = role["Properties"]
        assert "ManagedPolicyArns" not in props, name
        for policy in props["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                for resource in resources:
                    assert resource != "*", f"{name}: {statement['Action']} on *"
                    assert isinstance(resource, dict), f"{name}: {resource!r} is not a reference to a stack resource"
    # And every function uses one of those roles, so SAM adds none of its own (with "*" in them).
    for name, function in TEMPLATE.of_type("AWS::Serverless::Function").items():
        assert "Fn::GetAtt" in function["Properties"]["Role"], name
