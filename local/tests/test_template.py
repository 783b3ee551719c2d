"""template.yaml as the local stack reads it, and its least-privilege promise."""

import json
import re

from cfnlint.decode import decode

from local.template import TEMPLATE as TEMPLATE_PATH
from local.template import ROOT, Template, functions

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
    # Globals first: every function names the metrics' namespace.
    assert specs["CreateUserFunction"].environment == {
        "METRICS_NAMESPACE": "UsersApi/local", "USERS_TABLE": "UsersTable", "EMAILS_TABLE": "EmailsTable"}
    assert specs["GetUserFunction"].environment == {"METRICS_NAMESPACE": "UsersApi/local", "USERS_TABLE": "UsersTable"}
    # !Ref of a queue is its URL on AWS; without a local stack's URLs, its logical id.
    assert specs["UserStreamFunction"].environment == {
        "METRICS_NAMESPACE": "UsersApi/local", "HISTORY_TABLE": "HistoryTable", "WELCOME_QUEUE_URL": "WelcomeQueue"}
    assert specs["WelcomeUserFunction"].environment == {
        "METRICS_NAMESPACE": "UsersApi/local", "USERS_TABLE": "UsersTable", "IDEMPOTENCY_TABLE": "IdempotencyTable", "SENDER_ADDRESS": "welcome@example.com"}
    assert specs["UserStreamFunction"].timeout == 30  # its own Timeout over the Globals' 10
    assert specs["DeleteUserFunction"].timeout == 10


# Actions that support no resource-level permission: only "*" grants them.
XRAY_ONLY = {"Fn::If": ["TracesActive", [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"}],
                        {"Ref": "AWS::NoValue"}]}
ACTIONS_WITHOUT_A_RESOURCE_TYPE = {"dynamodb:ListStreams", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_every_role_names_only_its_own_resources():
    for name, role in TEMPLATE.of_type("AWS::IAM::Role").items():
        props = role["Properties"]
        # The one managed policy: AWS's X-Ray write access, only with XRayTracing.
        assert props.get("ManagedPolicyArns", XRAY_ONLY) == XRAY_ONLY, name
        for policy in props["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                if "Fn::If" in statement:  # a statement only some parameters grant
                    condition, granted, otherwise = statement["Fn::If"]
                    assert otherwise == {"Ref": "AWS::NoValue"}, name
                    statement = granted
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
        assert (table.get("DeletionPolicy"), table.get("UpdateReplacePolicy")) == ("RetainExceptOnCreate", "Retain"), name
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name
        assert table["Properties"]["DeletionProtectionEnabled"] is True, name
    # Every table's name is an output, for the README's instructions to delete the data on purpose.
    outputs = Template.load_outputs()
    assert {outputs[f"{name}Name"]["Value"]["Ref"] for name in ("UsersTable", "EmailsTable", "HistoryTable")} == {
        "UsersTable", "EmailsTable", "HistoryTable"}


def test_the_api_access_log_has_no_personal_data():
    settings = TEMPLATE.resources["UsersApi"]["Properties"]["AccessLogSettings"]
    fields = json.loads(settings["Format"])
    assert {"requestId", "routeKey", "status", "responseLatency", "integrationError"} <= set(fields)
    assert not any(word in settings["Format"] for word in ("body", "email", "sourceIp")), settings["Format"]
    log_group = TEMPLATE.resources[settings["DestinationArn"]["Fn::GetAtt"][0]]
    assert log_group["Properties"]["RetentionInDays"] > 0


def test_failed_stream_batches_are_kept_whole_in_a_private_expiring_tls_only_bucket():
    mapping = TEMPLATE.resources["UserStreamFunction"]["Properties"]["Events"]["UsersStream"]["Properties"]
    on_failure = mapping["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "S3" and on_failure["Destination"] == {"Fn::GetAtt": ["StreamFailureBucket", "Arn"]}
    # Given up on well before the stream forgets the records (24 hours).
    assert 0 < mapping["MaximumRecordAgeInSeconds"] < 24 * 3600 and mapping["MaximumRetryAttempts"] >= 0

    bucket = TEMPLATE.resources["StreamFailureBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
    assert all(bucket["PublicAccessBlockConfiguration"][flag] for flag in
               ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    [rule] = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and 1 <= rule["ExpirationInDays"] <= 30  # objects hold emails
    assert "VersioningConfiguration" not in bucket  # a kept version would outlive the replay's delete

    [tls_only] = TEMPLATE.resources["StreamFailureBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert tls_only["Effect"] == "Deny" and tls_only["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    # The stream function's role may do exactly what Lambda's S3 destination needs there.
    statements = [s for s in TEMPLATE.resources["UserStreamRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                  if "Fn::If" not in s]
    s3 = sorted((s["Action"], json.dumps(s["Resource"], sort_keys=True)) for s in statements if str(s["Action"]).startswith("s3:"))
    assert s3 == [
        ("s3:ListBucket", json.dumps({"Fn::GetAtt": ["StreamFailureBucket", "Arn"]})),
        ("s3:PutObject", json.dumps({"Fn::Sub": "${StreamFailureBucket.Arn}/*"})),
    ]
    # The only queues are the welcome queue and its DLQ: no stream failures go to SQS.
    assert set(TEMPLATE.of_type("AWS::SQS::Queue")) == {"WelcomeQueue", "WelcomeDeadLetterQueue"}


def test_every_alarm_notifies_the_one_topic_and_the_email_is_optional():
    alarms = TEMPLATE.of_type("AWS::CloudWatch::Alarm")
    assert set(alarms) == {"FailedStreamBatchAlarm", "DroppedStreamRecordsAlarm", "StreamIteratorAgeAlarm",
                           "FunctionErrorsAlarm", "FunctionThrottlesAlarm", "Api5xxAlarm", "WelcomeDeadLetterAlarm"}
    # The metric each watches, exactly: a misspelt name or dimension makes an alarm that never fires.
    mapping = [{"Name": "EventSourceMappingUUID", "Value": {"Ref": "UserStreamFunctionUsersStream"}}]
    watched = {name: (a["Properties"].get("Namespace"), a["Properties"].get("MetricName"), a["Properties"].get("Dimensions"))
               for name, a in alarms.items() if "MetricName" in a["Properties"]}
    assert watched == {
        "FailedStreamBatchAlarm": ("AWS/Lambda", "OnFailureDestinationDeliveredEventCount", mapping),
        "DroppedStreamRecordsAlarm": ("AWS/Lambda", "DroppedEventCount", mapping),
        "StreamIteratorAgeAlarm": ("AWS/Lambda", "IteratorAge", [{"Name": "FunctionName", "Value": {"Ref": "UserStreamFunction"}}]),
        "Api5xxAlarm": ("AWS/ApiGateway", "5xx", [{"Name": "ApiId", "Value": {"Ref": "UsersApi"}}, {"Name": "Stage", "Value": "$default"}]),
        "WelcomeDeadLetterAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                   [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["WelcomeDeadLetterQueue", "QueueName"]}}]),
    }
    # SAM names the mapping it makes for the UsersStream event <Function><Event>; it must emit the
    # mapping's own metrics for the first two to exist.
    events = TEMPLATE.resources["UserStreamFunction"]["Properties"]["Events"]
    assert "UsersStream" in events and events["UsersStream"]["Properties"]["MetricsConfig"] == {"Metrics": ["EventCount"]}
    for name in ("FunctionErrorsAlarm", "FunctionThrottlesAlarm"):
        queries = [q["Fn::If"][1] if "Fn::If" in q else q for q in alarms[name]["Properties"]["Metrics"]]
        metric = "Errors" if name == "FunctionErrorsAlarm" else "Throttles"
        assert all(q["MetricStat"]["Metric"]["Namespace"] == "AWS/Lambda" and q["MetricStat"]["Metric"]["MetricName"] == metric
                   for q in queries if "MetricStat" in q), name
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert len(alarm["Properties"]["AlarmDescription"]) > 40, name
    functions = set(TEMPLATE.of_type("AWS::Serverless::Function"))
    for name in ("FunctionErrorsAlarm", "FunctionThrottlesAlarm"):
        queries = [q["Fn::If"][1] if "Fn::If" in q else q for q in alarms[name]["Properties"]["Metrics"]]
        watched = {q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"] for q in queries if "MetricStat" in q}
        assert watched == functions, name
    assert TEMPLATE.resources["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"


def test_without_a_sender_there_is_no_welcome_queue_function_or_table():
    plain = Template.load(parameters={})
    assert plain.parameters["WelcomeSender"] == ""
    for name in ("WelcomeQueue", "WelcomeDeadLetterQueue", "WelcomeUserFunction", "WelcomeUserRole",
                 "IdempotencyTable", "WelcomeDeadLetterAlarm", "WelcomeUserLogGroup"):
        assert not plain.exists(name), name
        assert TEMPLATE.exists(name), name
    specs = {spec.name: spec for spec in functions(plain)}
    assert "WelcomeUserFunction" not in specs
    assert specs["UserStreamFunction"].environment["WELCOME_QUEUE_URL"] == ""


def test_the_welcome_queue_settings_hold():
    queue = TEMPLATE.resources["WelcomeQueue"]["Properties"]
    dead_letters = TEMPLATE.resources["WelcomeDeadLetterQueue"]["Properties"]
    function = TEMPLATE.resources["WelcomeUserFunction"]["Properties"]
    # Lambda's advice for an SQS mapping: a visibility timeout at least six times the function's.
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["WelcomeDeadLetterQueue", "Arn"]},
                                      "maxReceiveCount": 5}
    assert queue["SqsManagedSseEnabled"] is True and dead_letters["SqsManagedSseEnabled"] is True
    # The DLQ keeps what it gets longer than the queue would have.
    assert dead_letters["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    event = function["Events"]["WelcomeQueue"]["Properties"]
    assert event["Queue"] == {"Fn::GetAtt": ["WelcomeQueue", "Arn"]}
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["BatchSize"] == 10
    alarm = TEMPLATE.resources["WelcomeDeadLetterAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["WelcomeDeadLetterQueue", "QueueName"]}}]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    table = TEMPLATE.resources["IdempotencyTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}


def test_the_sender_must_be_a_bare_address():
    parameters = decode(str(TEMPLATE_PATH))[0]["Parameters"]
    pattern = re.compile(parameters["WelcomeSender"]["AllowedPattern"])
    # The same samples as the welcome function's own check (functions/welcome/src/mailer.rs).
    for accepted in ("", "welcome@example.com", "no-reply@mail.example.co.uk", "Ä@b.co", "a..b@x.com"):
        assert pattern.fullmatch(accepted), accepted
    for refused in ("Welcome <welcome@example.com>", "welcome", "a@b", "a b@example.com", "a@b.com, c@d.com",
                    "a,b@example.com", "a;b@example.com", "a@b@c.co", '"a"@b.co'):
        assert not pattern.fullmatch(refused), refused


def emitted_metrics() -> tuple[set[str], set[str], set[str]]:
    """The business metrics the functions write (names, Function values, Outcome values), read
    from their sources: what a dashboard may name in the MetricsNamespace."""
    sources = {path: path.read_text() for path in (ROOT / "crates").rglob("*.rs")}
    sources.update({path: path.read_text() for path in (ROOT / "functions").rglob("*.rs")})
    text = "\n".join(sources.values())
    names = set(re.findall(r'\.count\(\s*"([A-Za-z]+)"', text))
    names |= set(re.findall(r'Some\(\("([A-Za-z]+)"', text))  # users-http's metric_of
    welcome = re.findall(r'=> \("([A-Za-z]+)", "([a-z_]+)"\)', text)  # welcome-user's metric_of
    names |= {name for name, _ in welcome}
    outcomes = set(re.findall(r'Some\("([a-z_]+)"\)', text)) | {outcome for _, outcome in welcome}
    functions_ = set(re.findall(r'Metrics::from_env\("([a-z-]+)"\)', text))
    return names, functions_, outcomes


def dashboard_metrics(name: str) -> list[list]:
    """Every metric array of a dashboard's widgets, with the !Sub variables left as ${...}."""
    body = TEMPLATE.resources[name]["Properties"]["DashboardBody"]["Fn::Sub"]
    return [metric for widget in json.loads(body)["widgets"] for metric in widget["properties"]["metrics"]]


def test_the_dashboards_name_only_metrics_that_exist():
    names, functions_, outcomes = emitted_metrics()
    assert {"UsersCreated", "UsersRefused", "RecordsHandled", "RecordsFailed", "WelcomesSent", "ColdStart"} <= names
    assert {"create-user", "user-stream", "welcome-user"} <= functions_
    lambda_functions = set(TEMPLATE.of_type("AWS::Serverless::Function"))
    queues = set(TEMPLATE.of_type("AWS::SQS::Queue"))
    named = set()
    for dashboard in ("UsersDashboard", "WelcomeDashboard"):
        for metric in dashboard_metrics(dashboard):
            namespace, metric_name, *rest = metric
            dimensions = dict(zip(rest[0:-1:2], rest[1:-1:2])) if isinstance(rest[-1], dict) else dict(zip(rest[::2], rest[1::2]))
            if namespace == "${MetricsNamespace}/${AWS::StackName}":
                assert metric_name in names, metric
                assert dimensions["Function"] in functions_, metric
                assert set(dimensions) <= {"Function", "Outcome"}, metric
                assert dimensions.get("Outcome", "sent") in outcomes | {"sent"}, metric
                named.add(metric_name)
            elif namespace == "AWS/Lambda" and "FunctionName" in dimensions:
                assert metric_name in {"Duration", "Errors", "Throttles", "IteratorAge"}, metric
                assert dimensions["FunctionName"].strip("${}") in lambda_functions, metric
            elif namespace == "AWS/Lambda":
                # The stream mapping's own metrics (MetricsConfig EventCount), as the alarms use them.
                assert metric_name in {"OnFailureDestinationDeliveredEventCount", "DroppedEventCount"}, metric
                assert dimensions == {"EventSourceMappingUUID": "${UserStreamFunctionUsersStream}"}, metric
            elif namespace == "AWS/ApiGateway":
                assert metric_name in {"Count", "4xx", "5xx", "Latency"}, metric
                assert dimensions == {"ApiId": "${UsersApi}", "Stage": "$default"}, metric
            elif namespace == "AWS/SQS":
                assert metric_name in {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}, metric
                assert dimensions["QueueName"].removeprefix("${").removesuffix(".QueueName}") in queues, metric
            else:
                raise AssertionError(f"unknown namespace in {metric}")
    # Every business metric the functions write is on a dashboard.
    assert named == names, names - named
    assert TEMPLATE.resources["WelcomeDashboard"]["Condition"] == "SendsWelcome"


def test_xray_is_a_parameter_and_every_role_gets_its_write_access_with_it():
    assert TEMPLATE.globals["Function"]["Tracing"] == {"Fn::If": ["TracesActive", "Active", "PassThrough"]}
    for name, role in TEMPLATE.of_type("AWS::IAM::Role").items():
        assert role["Properties"]["ManagedPolicyArns"] == XRAY_ONLY, name
    assert Template.load(parameters={}).condition("TracesActive") is False
    assert TEMPLATE.condition("TracesActive") is True  # locally on, so the linters see it


def test_the_binaries_are_looked_for_where_cargo_puts_them(monkeypatch, tmp_path):
    from local.template import target_dir
    monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path / "elsewhere"))
    assert target_dir() == tmp_path / "elsewhere"
