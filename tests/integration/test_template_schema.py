"""The table the code uses is the table template.yaml creates."""

from __future__ import annotations

from typing import Any

from batchline.data.table import INDEX_ATTRS, INDEX_NAME, KEY_ATTRS


def _keys(schema: list[dict[str, str]]) -> tuple[str, ...]:
    order = {"HASH": 0, "RANGE": 1}
    return tuple(k["AttributeName"] for k in sorted(schema, key=lambda k: order[k["KeyType"]]))


def test_the_table_key_schema_is_the_one_the_store_uses(template: dict[str, Any]) -> None:
    props = template["Resources"]["Table"]["Properties"]
    assert _keys(props["KeySchema"]) == KEY_ATTRS
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert all(types[name] == "S" for name in (*KEY_ATTRS, *INDEX_ATTRS))


def test_the_listing_index_is_the_one_the_store_queries(template: dict[str, Any]) -> None:
    indexes = {i["IndexName"]: i for i in template["Resources"]["Table"]["Properties"]["GlobalSecondaryIndexes"]}
    assert _keys(indexes[INDEX_NAME]["KeySchema"]) == INDEX_ATTRS
    # Lists answer whole objects from the index, so it must carry every attribute.
    assert indexes[INDEX_NAME]["Projection"]["ProjectionType"] == "ALL"


def test_the_api_function_gets_every_setting_its_config_requires(template: dict[str, Any]) -> None:
    from batchline.config import ApiSettings

    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    env.update(template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"])
    required = {name.upper() for name, field in ApiSettings.model_fields.items() if field.is_required()}
    assert required <= set(env)


def _statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, resource in template["Resources"].items():
        for policy in resource.get("Properties", {}).get("Policies", []) or []:
            if isinstance(policy, dict) and "Statement" in policy:
                found.extend((name, statement) for statement in policy["Statement"])
    return found


def test_inline_policies_name_the_stacks_own_resources_never_a_wildcard(template: dict[str, Any]) -> None:
    statements = _statements(template)
    assert statements
    for name, statement in statements:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert "*" not in resources, (name, statement)
        assert all(r != "arn:aws:s3:::*" for r in resources), (name, statement)


def test_the_bucket_is_private_encrypted_and_refuses_plain_http(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["FilesBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    policy = template["Resources"]["FilesBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert policy["Effect"] == "Deny"
    assert policy["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_a_stream_record_the_sweeper_cannot_process_goes_to_a_queue_that_raises_an_alarm(cfn: dict[str, Any]) -> None:
    resources = cfn["Resources"]
    (mapping,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "SweeperFunction"}
    ]
    # Retries are bounded (a record is not retried for the stream's 24 hours) and then not dropped.
    assert 0 <= mapping["MaximumRetryAttempts"] <= 10
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    queue = destination["Fn::GetAtt"][0]
    assert destination == {"Fn::GetAtt": [queue, "Arn"]}
    assert resources[queue]["Type"] == "AWS::SQS::Queue"
    assert resources[queue]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600  # SQS's longest
    # Lambda sends the failure record with the function's own role.
    role = resources[resources["SweeperFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]]
    statements = [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert any(
        "sqs:SendMessage" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        and s["Resource"] == destination
        for s in statements
    ), statements
    alarms = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}} in r["Properties"]["Dimensions"]
    ]
    assert len(alarms) == 1
    alarm = alarms[0]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0


def test_the_state_machine_role_may_write_traces_when_tracing_is_on(cfn: dict[str, Any]) -> None:
    # SAM adds X-Ray's policy to a state machine's role only for a literal `Tracing: {Enabled: true}`; ours is
    # a condition, so the template grants it itself, under the same condition.
    role = cfn["Resources"]["BatchStateMachineRole"]["Properties"]
    xray = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
    assert {"Fn::If": ["Traced", xray, {"Ref": "AWS::NoValue"}]} in role["ManagedPolicyArns"]
    tracing = cfn["Resources"]["BatchStateMachine"]["Properties"]["TracingConfiguration"]
    assert tracing == {"Enabled": {"Fn::If": ["Traced", True, False]}}
