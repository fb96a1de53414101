#!/usr/bin/env python3
"""Fidelity check of the Connect simulator with an independent client.

boto3 carries its own copy of the Connect and STS service models (botocore's JSON models), so
this script checks the simulator's wire format against a second implementation besides the
Rust SDK: paths, query strings, body shapes, field types (CreatedTime must parse to a
datetime), pagination tokens and error codes / HTTP statuses; and STS (query protocol, XML):
AssumeRole and GetCallerIdentity, a Connect client on the assumed keys acting in the role's
account, refused roles, required ExternalIds and regions from the signing scope.

Usage: python3 tests/sim_boto3_check.py http://127.0.0.1:PORT

It starts nothing: it talks to a running simulator. It tunes the simulator through
/_sim/config for speed (short delays, no rate limits) and restores the previous
configuration at the end. Prints one line per failed check and finally
"N passed, M failed"; exits 1 if anything failed.
"""

import datetime
import json
import sys
import time
import urllib.request
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

OPERATIONS = [
    "CreateInstance",
    "DescribeInstance",
    "ListInstances",
    "DeleteInstance",
    "UpdateInstanceAttribute",
    "DescribeInstanceAttribute",
    "ListInstanceAttributes",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
]

# The instance-configuration operations (run_configuration_checks).
CONFIGURATION_OPERATIONS = [
    "AssociateInstanceStorageConfig",
    "DescribeInstanceStorageConfig",
    "ListInstanceStorageConfigs",
    "UpdateInstanceStorageConfig",
    "DisassociateInstanceStorageConfig",
    "AssociateApprovedOrigin",
    "ListApprovedOrigins",
    "DisassociateApprovedOrigin",
    "AssociateLambdaFunction",
    "ListLambdaFunctions",
    "DisassociateLambdaFunction",
    "AssociateBot",
    "ListBots",
    "DisassociateBot",
    "AssociateSecurityKey",
    "ListSecurityKeys",
    "DisassociateSecurityKey",
]

# Global Resiliency (run_replication_checks).
REPLICATION_OPERATIONS = [
    "ReplicateInstance",
    "CreateTrafficDistributionGroup",
    "DescribeTrafficDistributionGroup",
    "DeleteTrafficDistributionGroup",
    "ListTrafficDistributionGroups",
    "GetTrafficDistribution",
    "UpdateTrafficDistribution",
]


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, condition, what):
        if condition:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}", flush=True)
        return condition

    def equal(self, actual, expected, what):
        return self.check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")

    def error(self, call, code, status, what, message_contains=None):
        """Runs `call`, expecting a ClientError with `code` and HTTP `status`."""
        try:
            call()
        except ClientError as e:
            err = e.response.get("Error", {})
            meta = e.response.get("ResponseMetadata", {})
            self.equal(err.get("Code"), code, f"{what}: error code")
            self.equal(meta.get("HTTPStatusCode"), status, f"{what}: HTTP status")
            message = err.get("Message") or ""
            self.check(message != "", f"{what}: error message is present")
            if message_contains is not None:
                self.check(
                    message_contains in message,
                    f"{what}: message {message!r} contains {message_contains!r}",
                )
            return e
        self.check(False, f"{what}: expected {code}, the call succeeded")
        return None


class Control:
    """The simulator's /_sim/ endpoints."""

    def __init__(self, base):
        self.base = base.rstrip("/")
        self.default = None  # (account, region) of the static keys, read in run()

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def config(self, patch=None):
        if patch is None:
            return self.request("GET", "/_sim/config")
        return self.request("PUT", "/_sim/config", patch)

    def scope(self, account=None, region=None):
        """`?accountId=&region=`, the default account and region unless given."""
        account, region = account or self.default[0], region or self.default[1]
        return f"?accountId={account}&region={region}"

    def state(self, account=None, region=None):
        """The counters of one account and region (the default ones unless given)."""
        return self.request("GET", "/_sim/state" + self.scope(account, region))

    def instances(self, account=None, region=None):
        return self.request("GET", "/_sim/instances" + self.scope(account, region))

    def calls(self, query=""):
        return self.request("GET", "/_sim/calls" + query)


def is_aware_datetime(value):
    return isinstance(value, datetime.datetime) and value.tzinfo is not None


def wait_for_status(client, instance_id, status, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        instance = client.describe_instance(InstanceId=instance_id)["Instance"]
        if instance["InstanceStatus"] == status or time.monotonic() > deadline:
            return instance
        time.sleep(0.05)


def wait_until_visible(client, instance_id, timeout=10.0):
    """DescribeInstance until it stops answering ResourceNotFoundException; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return client.describe_instance(InstanceId=instance_id)["Instance"]
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        time.sleep(0.05)
    return None


def wait_until_gone(client, instance_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.describe_instance(InstanceId=instance_id)
        except ClientError as e:
            return e
        time.sleep(0.05)
    return None


def run(base, checks):
    control = Control(base)
    client = boto3.client(
        "connect",
        endpoint_url=base,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )
    model_types = client.meta.service_model.shape_for("InstanceAttributeType").enum

    suffix = uuid.uuid4().hex[:8]
    alias_a, alias_b, alias_c = (f"boto-{n}-{suffix}" for n in "abc")
    alias_fail = f"botofail-{suffix}"
    saved = control.config()
    control.default = (saved["accountId"], "us-east-1")
    control.config(
        {
            "creationDelayMs": 300,
            "deletionDelayMs": 300,
            "instanceQuota": len(control.request("GET", "/_sim/instances")) + 10,
            "lifecycleAttemptLimit": control.state()["lifecycleAttempts"] + 100,
            "failCreationAliasPattern": "^botofail-",
            "replicationDelayMs": 300,
            "replicaDeletionDelayMs": 300,
            "rateLimits": {op: None for op in OPERATIONS + CONFIGURATION_OPERATIONS + REPLICATION_OPERATIONS},
            "faults": {"serverErrorRatio": 0, "latencyMs": 0, "dropConnectionRatio": 0, "operations": []},
        }
    )
    try:
        run_checks(client, control, checks, model_types, alias_a, alias_b, alias_c, alias_fail)
        run_configuration_checks(client, control, checks, suffix)
        run_undocumented_checks(client, control, checks, model_types, suffix)
        run_replication_checks(base, client, control, checks, suffix)
        run_sts_checks(base, client, control, checks, suffix)
    finally:
        restore = {k: v for k, v in saved.items() if k not in ("region", "accountId")}
        control.config(restore)


def run_checks(client, control, checks, model_types, alias_a, alias_b, alias_c, alias_fail):
    # CreateInstance
    token = f"boto-create-{alias_a}"
    created = client.create_instance(
        ClientToken=token,
        IdentityManagementType="CONNECT_MANAGED",
        InstanceAlias=alias_a,
        InboundCallsEnabled=True,
        OutboundCallsEnabled=False,
        Tags={"team": "contact-centre"},
    )
    checks.equal(created["ResponseMetadata"]["HTTPStatusCode"], 200, "CreateInstance status")
    checks.check(created["ResponseMetadata"].get("RequestId"), "CreateInstance has a request id")
    instance_id = created.get("Id")
    arn = created.get("Arn")
    checks.check(isinstance(instance_id, str) and len(instance_id) == 36, "CreateInstance Id is a UUID")
    checks.equal(arn, f"arn:aws:connect:us-east-1:{control.config()['accountId']}:instance/{instance_id}", "Arn")

    again = client.create_instance(
        ClientToken=token,
        IdentityManagementType="CONNECT_MANAGED",
        InstanceAlias=alias_a,
        InboundCallsEnabled=True,
        OutboundCallsEnabled=False,
        Tags={"team": "contact-centre"},
    )
    checks.equal(again["Id"], instance_id, "same ClientToken returns the same instance")

    # DescribeInstance while creating, then ACTIVE
    instance = client.describe_instance(InstanceId=instance_id)["Instance"]
    checks.equal(instance["InstanceStatus"], "CREATION_IN_PROGRESS", "status right after create")
    checks.check(is_aware_datetime(instance.get("CreatedTime")), "CreatedTime parses to an aware datetime")
    if is_aware_datetime(instance.get("CreatedTime")):
        age = datetime.datetime.now(datetime.timezone.utc) - instance["CreatedTime"]
        checks.check(abs(age.total_seconds()) < 300, f"CreatedTime is now-ish ({age})")
    checks.equal(instance["Id"], instance_id, "Describe Id")
    checks.equal(instance["Arn"], arn, "Describe Arn")
    checks.equal(instance["InstanceAlias"], alias_a, "InstanceAlias")
    checks.equal(instance["IdentityManagementType"], "CONNECT_MANAGED", "IdentityManagementType")
    checks.check(instance["InboundCallsEnabled"] is True, "InboundCallsEnabled is boolean true")
    checks.check(instance["OutboundCallsEnabled"] is False, "OutboundCallsEnabled is boolean false")
    checks.equal(instance["InstanceAccessUrl"], f"https://{alias_a}.my.connect.aws", "InstanceAccessUrl")
    checks.check(instance["ServiceRole"].startswith("arn:aws:iam::"), "ServiceRole is an IAM role ARN")
    checks.equal(instance["Tags"], {"team": "contact-centre"}, "Tags from create")
    active = wait_for_status(client, instance_id, "ACTIVE")
    checks.equal(active["InstanceStatus"], "ACTIVE", "status after the creation delay")
    by_arn = client.describe_instance(InstanceId=arn)["Instance"]
    checks.equal(by_arn["Id"], instance_id, "DescribeInstance accepts the instance ARN")

    # ListInstances with pagination across three instances
    ids = {instance_id}
    for alias in (alias_b, alias_c):
        ids.add(
            client.create_instance(
                IdentityManagementType="SAML", InstanceAlias=alias, InboundCallsEnabled=False, OutboundCallsEnabled=True
            )["Id"]
        )
    seen, pages, kwargs = [], 0, {"MaxResults": 1}
    while True:
        page = client.list_instances(**kwargs)
        pages += 1
        summaries = page["InstanceSummaryList"]
        checks.equal(len(summaries), 1, f"ListInstances page {pages} size")
        for summary in summaries:
            seen.append(summary["Id"])
            checks.check(is_aware_datetime(summary.get("CreatedTime")), "summary CreatedTime is a datetime")
            checks.check(isinstance(summary.get("InboundCallsEnabled"), bool), "summary InboundCallsEnabled bool")
            checks.check(summary.get("InstanceStatus") in ("CREATION_IN_PROGRESS", "ACTIVE", "CREATION_FAILED"),
                         "summary InstanceStatus")
        token_ = page.get("NextToken")
        if token_ is None:
            break
        checks.check(isinstance(token_, str) and token_, "NextToken is a non-empty string")
        kwargs = {"MaxResults": 1, "NextToken": token_}
        if pages > 100:
            break
    checks.check(ids <= set(seen), "paging with MaxResults=1 visits every instance")
    checks.equal(len(seen), len(set(seen)), "no instance is listed twice")
    paginated = [s["Id"] for p in client.get_paginator("list_instances").paginate(PaginationConfig={"PageSize": 2})
                 for s in p["InstanceSummaryList"]]
    checks.equal(paginated, seen, "boto3's paginator sees the same instances")
    checks.error(lambda: client.list_instances(NextToken="not-a-token"), "InvalidRequestException", 400,
                 "ListInstances with a bad NextToken")

    # Attributes
    attributes = [a for p in client.get_paginator("list_instance_attributes").paginate(InstanceId=instance_id)
                  for a in p["Attributes"]]
    by_type = {a["AttributeType"]: a["Value"] for a in attributes}
    checks.check(set(model_types) <= set(by_type), "ListInstanceAttributes lists every model attribute type")
    checks.equal(by_type.get("INBOUND_CALLS"), "true", "INBOUND_CALLS from create")
    checks.equal(by_type.get("OUTBOUND_CALLS"), "false", "OUTBOUND_CALLS from create")
    checks.equal(by_type.get("CONTACTFLOW_LOGS"), "false", "CONTACTFLOW_LOGS default")
    first_page = client.list_instance_attributes(InstanceId=instance_id)
    checks.equal(len(first_page["Attributes"]), 7, "ListInstanceAttributes default page size")
    checks.check(isinstance(first_page.get("NextToken"), str), "ListInstanceAttributes NextToken")
    updated = client.update_instance_attribute(
        InstanceId=instance_id, AttributeType="CONTACTFLOW_LOGS", Value="true", ClientToken=f"upd-{alias_a}"
    )
    checks.equal(updated["ResponseMetadata"]["HTTPStatusCode"], 200, "UpdateInstanceAttribute status")
    attribute = client.describe_instance_attribute(InstanceId=instance_id, AttributeType="CONTACTFLOW_LOGS")
    checks.equal(attribute["Attribute"], {"AttributeType": "CONTACTFLOW_LOGS", "Value": "true"},
                 "DescribeInstanceAttribute after update")
    client.update_instance_attribute(InstanceId=instance_id, AttributeType="INBOUND_CALLS", Value="false")
    checks.check(client.describe_instance(InstanceId=instance_id)["Instance"]["InboundCallsEnabled"] is False,
                 "INBOUND_CALLS update shows in DescribeInstance")
    checks.error(lambda: client.update_instance_attribute(InstanceId=instance_id, AttributeType="EARLY_MEDIA",
                                                          Value="maybe"),
                 "InvalidParameterException", 400, "UpdateInstanceAttribute with a non-boolean value")

    # Tags
    client.tag_resource(resourceArn=arn, tags={"env": "dev"})
    checks.equal(client.list_tags_for_resource(resourceArn=arn)["tags"], {"team": "contact-centre", "env": "dev"},
                 "tags after TagResource")
    client.untag_resource(resourceArn=arn, tagKeys=["team"])
    checks.equal(client.list_tags_for_resource(resourceArn=arn)["tags"], {"env": "dev"}, "tags after UntagResource")
    checks.error(lambda: client.tag_resource(resourceArn=arn, tags={"aws:reserved": "x"}),
                 "InvalidParameterException", 400, "TagResource with an aws: key")
    checks.error(lambda: client.list_tags_for_resource(resourceArn=arn + "0"), "ResourceNotFoundException", 404,
                 "ListTagsForResource of an unknown ARN")

    # Errors with the codes and statuses of the service model
    checks.error(lambda: client.describe_instance(InstanceId=str(uuid.uuid4())), "ResourceNotFoundException", 404,
                 "DescribeInstance of an unknown id")
    checks.error(
        lambda: client.create_instance(IdentityManagementType="CONNECT_MANAGED", InstanceAlias=alias_a,
                                       InboundCallsEnabled=True, OutboundCallsEnabled=True),
        "InvalidRequestException", 400, "CreateInstance with a taken alias", message_contains=alias_a)
    count = len(control.instances())
    control.config({"instanceQuota": count})
    checks.error(
        lambda: client.create_instance(IdentityManagementType="CONNECT_MANAGED", InstanceAlias=f"q{alias_a}",
                                       InboundCallsEnabled=True, OutboundCallsEnabled=True),
        "ServiceQuotaExceededException", 402, "CreateInstance over the instance quota")
    control.config({"instanceQuota": count + 10, "rateLimits": {"ListInstances": 0}})
    checks.error(lambda: client.list_instances(), "ThrottlingException", 429, "ListInstances over its rate limit")
    control.config({"rateLimits": {"ListInstances": None},
                    "faults": {"serverErrorRatio": 1, "operations": ["DescribeInstance"]}})
    checks.error(lambda: client.describe_instance(InstanceId=instance_id), "InternalServiceException", 500,
                 "injected 5xx on DescribeInstance")
    checks.check("InstanceSummaryList" in client.list_instances(), "faults only hit the listed operations")
    control.config({"faults": {"serverErrorRatio": 0, "operations": []}})

    # CREATION_FAILED on demand
    failing = client.create_instance(IdentityManagementType="CONNECT_MANAGED", InstanceAlias=alias_fail,
                                     InboundCallsEnabled=True, OutboundCallsEnabled=True)["Id"]
    failed = wait_for_status(client, failing, "CREATION_FAILED")
    checks.equal(failed["InstanceStatus"], "CREATION_FAILED", "alias matching the pattern fails creation")
    checks.check(isinstance(failed.get("StatusReason", {}).get("Message"), str), "StatusReason.Message")

    # 30-day lifecycle attempt limit
    attempts = control.state()["lifecycleAttempts"]
    control.config({"lifecycleAttemptLimit": attempts})
    checks.error(lambda: client.delete_instance(InstanceId=failing), "ServiceQuotaExceededException", 402,
                 "DeleteInstance over the lifecycle attempt limit",
                 message_contains="excessive number of creation and deletion attempts")
    control.config({"lifecycleAttemptLimit": attempts + 100})

    # DeleteInstance with a ClientToken, visible until the deletion delay passed
    delete_token = f"boto-delete-{alias_a}"
    deleted = client.delete_instance(InstanceId=instance_id, ClientToken=delete_token)
    checks.equal(deleted["ResponseMetadata"]["HTTPStatusCode"], 200, "DeleteInstance status")
    client.delete_instance(InstanceId=instance_id, ClientToken=delete_token)
    checks.equal(control.state()["lifecycleAttempts"], attempts + 1, "repeated delete token counts once")
    checks.equal(client.describe_instance(InstanceId=instance_id)["Instance"]["Id"], instance_id,
                 "instance still visible during the deletion delay")
    gone = wait_until_gone(client, instance_id)
    checks.check(gone is not None and gone.response["Error"]["Code"] == "ResourceNotFoundException",
                 "DescribeInstance is ResourceNotFoundException after the deletion delay")
    for other in ids - {instance_id} | {failing}:
        client.delete_instance(InstanceId=other)

    # The call log saw boto3's calls with their ClientTokens
    calls = control.calls()
    creates = [c for c in calls if c["operation"] == "CreateInstance" and c["clientToken"] == token]
    checks.equal(len(creates), 2, "call log records both creates with the ClientToken")
    checks.check(all(c["instanceId"] == instance_id and c["status"] == 200 for c in creates),
                 "create calls carry instance id and status")
    deletes = [c for c in calls if c["operation"] == "DeleteInstance" and c["clientToken"] == delete_token]
    checks.equal(len(deletes), 2, "call log records the delete ClientToken (query parameter)")
    throttled = [c for c in calls if c["errorType"] == "ThrottlingException"]
    checks.check(throttled and throttled[-1]["status"] == 429, "call log records the throttled call")
    seen_ops = {c["operation"] for c in calls}
    checks.check(set(OPERATIONS) <= seen_ops, f"every operation was exercised ({sorted(set(OPERATIONS) - seen_ops)})")


def run_configuration_checks(client, control, checks, suffix):
    """Storage configurations and the other associations, as botocore's model has them."""
    alias = f"boto-cfg-{suffix}"
    instance_id = client.create_instance(IdentityManagementType="CONNECT_MANAGED", InstanceAlias=alias,
                                         InboundCallsEnabled=True, OutboundCallsEnabled=True)["Id"]
    checks.error(lambda: client.list_approved_origins(InstanceId=instance_id), "InvalidRequestException", 400,
                 "configuration before the instance is ACTIVE")
    wait_for_status(client, instance_id, "ACTIVE")
    kms = {"EncryptionType": "KMS", "KeyId": "arn:aws:kms:us-east-1:111122223333:key/abcd"}

    # Storage configurations
    token = f"boto-storage-{suffix}"
    s3 = {"StorageType": "S3", "S3Config": {"BucketName": "rec", "BucketPrefix": "calls", "EncryptionConfig": kms}}
    first = client.associate_instance_storage_config(InstanceId=instance_id, ResourceType="CALL_RECORDINGS",
                                                     StorageConfig=s3, ClientToken=token)
    association = first.get("AssociationId")
    checks.check(isinstance(association, str) and len(association) == 64, "AssociationId of a storage config")
    again = client.associate_instance_storage_config(InstanceId=instance_id, ResourceType="CALL_RECORDINGS",
                                                     StorageConfig=s3, ClientToken=token)
    checks.equal(again.get("AssociationId"), association, "a replayed association answers the same id")
    checks.error(lambda: client.associate_instance_storage_config(
        InstanceId=instance_id, ResourceType="CALL_RECORDINGS", StorageConfig=s3),
        "ResourceConflictException", 409, "a second storage config of one type")
    checks.error(lambda: client.associate_instance_storage_config(
        InstanceId=instance_id, ResourceType="AGENT_EVENTS", StorageConfig=s3),
        "InvalidRequestException", 400, "agent events to S3", message_contains="AGENT_EVENTS")
    listed = client.list_instance_storage_configs(InstanceId=instance_id, ResourceType="CALL_RECORDINGS")
    checks.equal([c.get("AssociationId") for c in listed["StorageConfigs"]], [association],
                 "ListInstanceStorageConfigs of the type")
    checks.equal(listed["StorageConfigs"][0].get("S3Config"), s3["S3Config"], "S3Config round trip")
    video = {"StorageType": "KINESIS_VIDEO_STREAM",
             "KinesisVideoStreamConfig": {"Prefix": "media", "RetentionPeriodHours": 0, "EncryptionConfig": kms}}
    media = client.associate_instance_storage_config(InstanceId=instance_id, ResourceType="MEDIA_STREAMS",
                                                     StorageConfig=video)["AssociationId"]
    described = client.describe_instance_storage_config(InstanceId=instance_id, AssociationId=media,
                                                         ResourceType="MEDIA_STREAMS")["StorageConfig"]
    checks.equal(described["KinesisVideoStreamConfig"]["Prefix"], f"media-connect-{alias}-contact-",
                 "the Kinesis Video prefix as AWS echoes it")
    checks.equal(described["KinesisVideoStreamConfig"]["RetentionPeriodHours"], 0, "RetentionPeriodHours")
    firehose = {"StorageType": "KINESIS_FIREHOSE",
                "KinesisFirehoseConfig": {"FirehoseArn": "arn:aws:firehose:us-east-1:111122223333:deliverystream/c"}}
    stream = {"StorageType": "KINESIS_STREAM",
              "KinesisStreamConfig": {"StreamArn": "arn:aws:kinesis:us-east-1:111122223333:stream/c"}}
    ctr = client.associate_instance_storage_config(InstanceId=instance_id, ResourceType="CONTACT_TRACE_RECORDS",
                                                   StorageConfig=stream)["AssociationId"]
    client.update_instance_storage_config(InstanceId=instance_id, AssociationId=ctr,
                                          ResourceType="CONTACT_TRACE_RECORDS", StorageConfig=firehose,
                                          ClientToken=f"boto-update-{suffix}")
    ctrs = client.list_instance_storage_configs(InstanceId=instance_id, ResourceType="CONTACT_TRACE_RECORDS")
    checks.equal([(c["AssociationId"], c["StorageType"]) for c in ctrs["StorageConfigs"]],
                 [(ctr, "KINESIS_FIREHOSE")], "UpdateInstanceStorageConfig keeps the association")
    client.disassociate_instance_storage_config(InstanceId=instance_id, AssociationId=ctr,
                                                ResourceType="CONTACT_TRACE_RECORDS",
                                                ClientToken=f"boto-disassociate-{suffix}")
    checks.error(lambda: client.describe_instance_storage_config(
        InstanceId=instance_id, AssociationId=ctr, ResourceType="CONTACT_TRACE_RECORDS"),
        "ResourceNotFoundException", 404, "a disassociated storage config")

    # Approved origins, Lambda functions, Lex V2 bots
    client.associate_approved_origin(InstanceId=instance_id, Origin="https://crm.example.com",
                                     ClientToken=f"boto-origin-{suffix}")
    checks.error(lambda: client.associate_approved_origin(InstanceId=instance_id, Origin="https://crm.example.com"),
                 "ResourceConflictException", 409, "an origin twice")
    checks.equal(client.list_approved_origins(InstanceId=instance_id)["Origins"], ["https://crm.example.com"],
                 "ListApprovedOrigins")
    client.disassociate_approved_origin(InstanceId=instance_id, Origin="https://crm.example.com")
    checks.equal(client.list_approved_origins(InstanceId=instance_id)["Origins"], [], "origin disassociated")
    functions = [f"arn:aws:lambda:us-east-1:111122223333:function:f{n}" for n in range(30)]
    for arn in functions:
        client.associate_lambda_function(InstanceId=instance_id, FunctionArn=arn)
    page = client.list_lambda_functions(InstanceId=instance_id)
    checks.equal(len(page["LambdaFunctions"]), 25, "ListLambdaFunctions page size")
    paged = [f for p in client.get_paginator("list_lambda_functions").paginate(InstanceId=instance_id)
             for f in p["LambdaFunctions"]]
    checks.equal(paged, functions, "boto3's paginator sees every function")
    client.disassociate_lambda_function(InstanceId=instance_id, FunctionArn=functions[0])
    checks.error(lambda: client.disassociate_lambda_function(InstanceId=instance_id, FunctionArn=functions[0]),
                 "ResourceNotFoundException", 404, "a function not associated")
    bot = "arn:aws:lex:us-east-1:111122223333:bot-alias/BOT/ALIAS"
    client.associate_bot(InstanceId=instance_id, LexV2Bot={"AliasArn": bot})
    checks.equal(client.list_bots(InstanceId=instance_id, LexVersion="V2")["LexBots"],
                 [{"LexV2Bot": {"AliasArn": bot}}], "ListBots V2")
    checks.error(lambda: client.associate_bot(InstanceId=instance_id, LexBot={"Name": "x", "LexRegion": "us-east-1"}),
                 "InvalidRequestException", 400, "a Lex V1 bot")
    client.disassociate_bot(InstanceId=instance_id, LexV2Bot={"AliasArn": bot})
    checks.equal(client.list_bots(InstanceId=instance_id, LexVersion="V2")["LexBots"], [], "bot disassociated")

    # Security keys
    body = "A" * 200
    key = "-----BEGIN PUBLIC KEY-----\r\n" + "\r\n".join(body[i:i + 76] for i in range(0, 200, 76)) + \
          "\r\n-----END PUBLIC KEY-----"
    key_id = client.associate_security_key(InstanceId=instance_id, Key=key)["AssociationId"]
    client.associate_security_key(InstanceId=instance_id, Key=key.replace("A", "B"))
    checks.error(lambda: client.associate_security_key(InstanceId=instance_id, Key=key.replace("A", "C")),
                 "ServiceQuotaExceededException", 402, "a third security key")
    keys = client.list_security_keys(InstanceId=instance_id)["SecurityKeys"]
    checks.equal(len(keys), 2, "ListSecurityKeys")
    checks.equal(keys[0]["AssociationId"], key_id, "the key's AssociationId")
    checks.check(is_aware_datetime(keys[0].get("CreationTime")), "CreationTime parses to an aware datetime")
    expected = "-----BEGIN PUBLIC KEY-----\n" + "\n".join(body[i:i + 64] for i in range(0, 200, 64)) + \
               "\n-----END PUBLIC KEY-----"
    checks.equal(keys[0]["Key"], expected, "the key as AWS echoes it")
    client.disassociate_security_key(InstanceId=instance_id, AssociationId=key_id,
                                     ClientToken=f"boto-key-{suffix}")
    checks.equal(len(client.list_security_keys(InstanceId=instance_id)["SecurityKeys"]), 1, "key disassociated")

    calls = control.calls()
    # botocore fills in a random ClientToken where the caller gives none (idempotencyToken
    # members), so each operation has several: look for the ones given here.
    tokens = {(c["operation"], c["clientToken"]) for c in calls if c.get("clientToken")}
    checks.check(("DisassociateInstanceStorageConfig", f"boto-disassociate-{suffix}") in tokens,
                 "a Disassociate ClientToken (query parameter) in the call log")
    checks.check(("AssociateApprovedOrigin", f"boto-origin-{suffix}") in tokens,
                 "an Associate ClientToken (body) in the call log")
    seen_ops = {c["operation"] for c in calls}
    missing = sorted(set(CONFIGURATION_OPERATIONS) - seen_ops)
    checks.check(not missing, f"every configuration operation was exercised ({missing})")
    client.delete_instance(InstanceId=instance_id)


def listed_ids(client):
    return [s["Id"] for p in client.get_paginator("list_instances").paginate() for s in p["InstanceSummaryList"]]


def run_undocumented_checks(client, control, checks, model_types, suffix):
    """The knobs for behaviour AWS does not document, each switched on and off again."""

    def create(alias, **extra):
        return client.create_instance(IdentityManagementType="CONNECT_MANAGED", InstanceAlias=alias,
                                      InboundCallsEnabled=True, OutboundCallsEnabled=True, **extra)["Id"]

    checks.equal(
        {k: control.config()[k] for k in ("visibilityDelayMs", "refuseDeleteWhileCreating",
                                          "failedInstanceRetentionMs", "extraAttributeTypes")},
        {"visibilityDelayMs": 0, "refuseDeleteWhileCreating": False, "failedInstanceRetentionMs": None,
         "extraAttributeTypes": []},
        "undocumented-behaviour knobs are off by default")
    cleanup = []

    # visibilityDelayMs: eventual consistency right after CreateInstance
    control.config({"visibilityDelayMs": 800})
    token = f"boto-late-{suffix}"
    late = create(f"boto-late-{suffix}", ClientToken=token)
    cleanup.append(late)
    checks.error(lambda: client.describe_instance(InstanceId=late), "ResourceNotFoundException", 404,
                 "DescribeInstance during the visibility delay")
    checks.check(late not in listed_ids(client), "ListInstances omits an instance during the visibility delay")
    checks.equal(create(f"boto-late-{suffix}", ClientToken=token), late,
                 "a replayed CreateInstance answers with the invisible instance")
    visible = wait_until_visible(client, late)
    checks.check(visible is not None and visible["Id"] == late, "the instance appears after the visibility delay")
    checks.check(late in listed_ids(client), "ListInstances lists it after the visibility delay")
    control.config({"visibilityDelayMs": 0})

    # refuseDeleteWhileCreating: InvalidRequestException, no attempt counted
    control.config({"refuseDeleteWhileCreating": True, "creationDelayMs": 1000})
    busy = create(f"boto-busy-{suffix}")
    cleanup.append(busy)
    attempts = control.state()["lifecycleAttempts"]
    checks.error(lambda: client.delete_instance(InstanceId=busy), "InvalidRequestException", 400,
                 "DeleteInstance while CREATION_IN_PROGRESS", message_contains="still being created")
    checks.equal(control.state()["lifecycleAttempts"], attempts, "a refused delete is not an attempt")
    checks.equal(wait_for_status(client, busy, "ACTIVE")["InstanceStatus"], "ACTIVE", "refused delete left it")
    control.config({"refuseDeleteWhileCreating": False, "creationDelayMs": 300})

    # failedInstanceRetentionMs: AWS removes CREATION_FAILED instances after a while
    control.config({"failedInstanceRetentionMs": 500})
    doomed = create(f"botofail-gone-{suffix}")
    failed = wait_for_status(client, doomed, "CREATION_FAILED")
    checks.equal(failed["InstanceStatus"], "CREATION_FAILED", "a failing instance fails first")
    gone = wait_until_gone(client, doomed)
    checks.check(gone is not None and gone.response["Error"]["Code"] == "ResourceNotFoundException",
                 "a CREATION_FAILED instance vanishes after failedInstanceRetentionMs")
    checks.check(doomed not in [i["id"] for i in control.instances()],
                 "the vanished instance no longer exists")
    control.config({"failedInstanceRetentionMs": None})
    checks.equal(control.config()["failedInstanceRetentionMs"], None, "failedInstanceRetentionMs null is forever")

    # extraAttributeTypes: attribute types newer than the client's model
    control.config({"extraAttributeTypes": ["FUTURE_FEATURE_X"]})
    attributes = [a for p in client.get_paginator("list_instance_attributes").paginate(InstanceId=late)
                  for a in p["Attributes"]]
    by_type = {a["AttributeType"]: a["Value"] for a in attributes}
    checks.check("FUTURE_FEATURE_X" not in model_types, "the extra type is unknown to botocore's model")
    checks.equal(by_type.get("FUTURE_FEATURE_X"), "false", "ListInstanceAttributes lists the extra type")
    checks.check(set(model_types) <= set(by_type), "the known types are still listed beside it")
    described = client.describe_instance_attribute(InstanceId=late, AttributeType="FUTURE_FEATURE_X")
    checks.equal(described["Attribute"]["Value"], "false", "DescribeInstanceAttribute of the extra type")
    control.config({"extraAttributeTypes": []})

    # The call log keeps the real outcome of a dropped reply
    control.config({"faults": {"dropConnectionRatio": 1, "operations": ["ListInstances"]}})
    try:
        client.list_instances()
        checks.check(False, "a dropped reply reached boto3")
    except ClientError as e:
        checks.check(False, f"a dropped reply gave an HTTP answer: {e}")
    except (ConnectionClosedError, EndpointConnectionError):
        # A connection closed without an answer (botocore's two names for it): what a
        # dropped reply is. Any other exception is not caught here and fails the script.
        checks.passed += 1
    control.config({"faults": {"dropConnectionRatio": 0, "operations": []}})
    last = [c for c in control.calls() if c["operation"] == "ListInstances"][-1]
    checks.equal((last["status"], last["errorType"], last["dropped"]), (200, None, True),
                 "the call log records a dropped reply with its real outcome")

    for instance_id in cleanup:
        client.delete_instance(InstanceId=instance_id)


def wait_for_replication(client, instance_id, status, timeout=10.0):
    """DescribeInstance until its one replication summary has `status`; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.describe_instance(InstanceId=instance_id)
        summaries = answer.get("ReplicationConfiguration", {}).get("ReplicationStatusSummaryList", [])
        if (summaries and summaries[0]["ReplicationStatus"] == status) or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def run_replication_checks(base, client, control, checks, suffix):
    """Global Resiliency: ReplicateInstance from us-east-1 to us-west-2, the replication in both
    regions' DescribeInstance, the default traffic distribution group and its distribution, two
    refusals, and deleting the replica."""
    west = boto3.client(
        "connect",
        endpoint_url=base,
        region_name="us-west-2",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )
    source = client.create_instance(IdentityManagementType="SAML", InstanceAlias=f"boto-gr-{suffix}",
                                    InboundCallsEnabled=True, OutboundCallsEnabled=True)["Id"]
    managed = client.create_instance(IdentityManagementType="CONNECT_MANAGED", InstanceAlias=f"boto-grm-{suffix}",
                                     InboundCallsEnabled=True, OutboundCallsEnabled=True)["Id"]
    wait_for_status(client, source, "ACTIVE")
    wait_for_status(client, managed, "ACTIVE")
    checks.check("ReplicationConfiguration" not in client.describe_instance(InstanceId=source),
                 "an instance without a replica has no ReplicationConfiguration")

    # Two refusals.
    checks.error(lambda: client.replicate_instance(InstanceId=managed, ReplicaRegion="us-west-2",
                                                   ReplicaAlias=f"boto-grm-r-{suffix}"),
                 "InvalidRequestException", 400, "ReplicateInstance of a CONNECT_MANAGED instance",
                 message_contains="SAML")
    checks.error(lambda: client.replicate_instance(InstanceId=source, ReplicaRegion="eu-west-2",
                                                   ReplicaAlias=f"boto-gr-eu-{suffix}"),
                 "InvalidRequestException", 400, "ReplicateInstance to a region outside the pair",
                 message_contains="eu-west-2")

    token = f"boto-rep-{suffix}"
    out = client.replicate_instance(InstanceId=source, ReplicaRegion="us-west-2",
                                    ReplicaAlias=f"boto-gr-r-{suffix}", ClientToken=token)
    checks.equal(out["Id"], source, "the replica keeps the instance id")
    checks.check(out["Arn"].startswith("arn:aws:connect:us-west-2:"), "the replica's ARN is in the replica region")
    again = client.replicate_instance(InstanceId=source, ReplicaRegion="us-west-2",
                                      ReplicaAlias=f"boto-gr-r-{suffix}", ClientToken=token)
    checks.equal((again["Id"], again["Arn"]), (out["Id"], out["Arn"]), "a replayed ReplicateInstance")
    config = client.describe_instance(InstanceId=source)["ReplicationConfiguration"]
    checks.equal(config["SourceRegion"], "us-east-1", "SourceRegion")
    checks.equal([(s["Region"], s["ReplicationStatus"]) for s in config["ReplicationStatusSummaryList"]],
                 [("us-west-2", "INSTANCE_REPLICATION_IN_PROGRESS")], "the source lists the replica in progress")
    checks.check(config["GlobalSignInEndpoint"].startswith(f"https://boto-gr-{suffix}.my.connect.aws/"),
                 "GlobalSignInEndpoint")
    replica = west.describe_instance(InstanceId=source)["Instance"]
    checks.equal(replica["InstanceStatus"], "CREATION_IN_PROGRESS", "the replica is being created")
    checks.check(is_aware_datetime(replica["CreatedTime"]), "the replica's CreatedTime is a datetime")

    answer = wait_for_replication(client, source, "INSTANCE_REPLICATION_COMPLETE")
    summaries = answer["ReplicationConfiguration"]["ReplicationStatusSummaryList"]
    checks.equal(summaries[0]["ReplicationStatus"], "INSTANCE_REPLICATION_COMPLETE", "the replication completes")
    summaries = west.describe_instance(InstanceId=source)["ReplicationConfiguration"]["ReplicationStatusSummaryList"]
    checks.equal([(s["Region"], s["ReplicationStatus"]) for s in summaries],
                 [("us-east-1", "INSTANCE_REPLICATION_COMPLETE")], "the replica lists the source, complete")
    checks.check(source in [i["Id"] for i in west.list_instances()["InstanceSummaryList"]],
                 "the replica is listed in us-west-2")

    groups = west.list_traffic_distribution_groups(InstanceId=source)["TrafficDistributionGroupSummaryList"]
    checks.equal([(g["IsDefault"], g["Status"]) for g in groups], [(True, "ACTIVE")],
                 "the default traffic distribution group, listed from the replica region")
    group = groups[0]["Id"]
    described = client.describe_traffic_distribution_group(TrafficDistributionGroupId=group)
    checks.equal(described["TrafficDistributionGroup"]["InstanceArn"],
                 client.describe_instance(InstanceId=source)["Instance"]["Arn"],
                 "the group belongs to the source instance")
    dist = client.get_traffic_distribution(Id=group)
    checks.equal(dist["TelephonyConfig"]["Distributions"],
                 [{"Region": "us-east-1", "Percentage": 100}, {"Region": "us-west-2", "Percentage": 0}],
                 "telephony defaults to the source region")
    checks.equal([d["Enabled"] for d in dist["SignInConfig"]["Distributions"]], [True, True],
                 "sign-in is enabled in both regions")
    west.update_traffic_distribution(
        Id=groups[0]["Arn"],
        TelephonyConfig={"Distributions": [{"Region": "us-east-1", "Percentage": 20},
                                           {"Region": "us-west-2", "Percentage": 80}]})
    dist = client.get_traffic_distribution(Id=group)
    checks.equal([d["Percentage"] for d in dist["TelephonyConfig"]["Distributions"]], [20, 80],
                 "an update from us-west-2 shows in us-east-1")
    checks.error(lambda: client.update_traffic_distribution(
        Id=group, TelephonyConfig={"Distributions": [{"Region": "us-east-1", "Percentage": 50}]}),
        "InvalidRequestException", 400, "percentages that do not add up to 100", message_contains="100")
    checks.error(lambda: client.delete_traffic_distribution_group(TrafficDistributionGroupId=group),
                 "InvalidRequestException", 400, "deleting the default group")
    checks.error(lambda: client.delete_instance(InstanceId=source), "InvalidRequestException", 400,
                 "deleting the source while it has a replica", message_contains="us-west-2")
    updates = [c for c in control.calls() if c["operation"] == "UpdateTrafficDistribution"]
    checks.equal([c["region"] for c in updates[:1]], ["us-west-2"], "the call log records the calling region")

    # Deleting the replica: INSTANCE_REPLICA_DELETING, then gone with its group.
    west.delete_instance(InstanceId=source)
    summaries = client.describe_instance(InstanceId=source)["ReplicationConfiguration"]["ReplicationStatusSummaryList"]
    checks.equal(summaries[0]["ReplicationStatus"], "INSTANCE_REPLICA_DELETING", "the replica is being deleted")
    checks.check(wait_until_gone(west, source) is not None, "the replica vanishes")
    checks.check("ReplicationConfiguration" not in client.describe_instance(InstanceId=source),
                 "the source's ReplicationConfiguration goes with the replica")
    checks.equal(client.list_traffic_distribution_groups()["TrafficDistributionGroupSummaryList"], [],
                 "the default group goes with the replica")
    checks.equal(control.state(region="us-west-2")["lifecycleAttempts"], 2,
                 "the replica's creation and deletion count in us-west-2")
    client.delete_instance(InstanceId=source)
    client.delete_instance(InstanceId=managed)
    wait_until_gone(client, source)
    wait_until_gone(client, managed)


def run_sts_checks(base, client, control, checks, suffix):
    """STS on the simulator's port, and the account and region a request acts in."""
    default_account = control.default[0]
    role_account = "444455556666"
    role_arn = f"arn:aws:iam::{role_account}:role/boto/connect-check"
    session = f"boto3-{suffix}"

    def sts(**keys):
        keys.setdefault("aws_access_key_id", "test")
        keys.setdefault("aws_secret_access_key", "test")
        return boto3.client("sts", endpoint_url=base, region_name="us-east-1",
                            config=Config(retries={"total_max_attempts": 1}), **keys)

    base_sts = sts()
    me = base_sts.get_caller_identity()
    checks.equal(me["ResponseMetadata"]["HTTPStatusCode"], 200, "GetCallerIdentity status")
    checks.check(me["ResponseMetadata"].get("RequestId"), "GetCallerIdentity has a request id")
    checks.equal(me.get("Account"), default_account, "static keys are the default account")
    checks.equal(me.get("Arn"), f"arn:aws:iam::{default_account}:user/connect-sim", "static keys' Arn")
    checks.check(str(me.get("UserId", "")).startswith("AIDA"), "static keys' UserId")

    assumed = base_sts.assume_role(RoleArn=role_arn, RoleSessionName=session, ExternalId="boto-ext",
                                   DurationSeconds=900)
    creds = assumed.get("Credentials", {})
    checks.check(str(creds.get("AccessKeyId", "")).startswith(f"ASIASIM{role_account}"),
                 f"the issued key names the role's account ({creds.get('AccessKeyId')})")
    checks.check(creds.get("SecretAccessKey") and creds.get("SessionToken"), "secret and session token")
    expiration = creds.get("Expiration")
    checks.check(is_aware_datetime(expiration), "Expiration parses to an aware datetime")
    if is_aware_datetime(expiration):
        left = (expiration - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        checks.check(880 <= left <= 920, f"Expiration is now + DurationSeconds ({left:.0f} s)")
    user = assumed.get("AssumedRoleUser", {})
    checks.equal(user.get("Arn"), f"arn:aws:sts::{role_account}:assumed-role/connect-check/{session}",
                 "AssumedRoleUser.Arn (role path dropped)")
    checks.check(str(user.get("AssumedRoleId", "")).endswith(f":{session}"), "AssumedRoleId ends with the session")

    keys = {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"]}
    role_me = sts(**keys).get_caller_identity()
    checks.equal((role_me.get("Account"), role_me.get("Arn")), (role_account, user.get("Arn")),
                 "GetCallerIdentity with the assumed keys")

    # A Connect client on the assumed keys acts in the role's account.
    as_role = boto3.client("connect", endpoint_url=base, region_name="us-east-1",
                           config=Config(retries={"total_max_attempts": 1}), **keys)
    created = as_role.create_instance(ClientToken=f"boto-role-{suffix}", IdentityManagementType="CONNECT_MANAGED",
                                      InstanceAlias=f"boto-role-{suffix}", InboundCallsEnabled=True,
                                      OutboundCallsEnabled=True)
    role_instance = created["Id"]
    checks.equal(created["Arn"], f"arn:aws:connect:us-east-1:{role_account}:instance/{role_instance}",
                 "the instance ARN names the role's account")
    checks.equal([i["id"] for i in control.instances(role_account)], [role_instance],
                 "/_sim/instances?accountId= shows it in the role's account")
    checks.check(role_instance in listed_ids(as_role), "the role's account lists it")
    checks.check(role_instance not in listed_ids(client), "the default account does not list it")
    checks.error(lambda: client.describe_instance(InstanceId=role_instance), "ResourceNotFoundException", 404,
                 "the default account cannot describe the role account's instance")
    checks.equal(control.state(role_account)["instanceCount"], 1, "/_sim/state counts it in the role's account")
    as_role.delete_instance(InstanceId=role_instance)

    # The signing region separates state too.
    eu = boto3.client("connect", endpoint_url=base, region_name="eu-west-1", aws_access_key_id="test",
                      aws_secret_access_key="test", config=Config(retries={"total_max_attempts": 1}))
    eu_id = eu.create_instance(IdentityManagementType="CONNECT_MANAGED", InstanceAlias=f"boto-eu-{suffix}",
                               InboundCallsEnabled=True, OutboundCallsEnabled=True)["Id"]
    checks.equal(eu.describe_instance(InstanceId=eu_id)["Instance"]["Arn"],
                 f"arn:aws:connect:eu-west-1:{default_account}:instance/{eu_id}", "an eu-west-1 instance's ARN")
    checks.check(eu_id not in listed_ids(client), "us-east-1 does not list the eu-west-1 instance")
    checks.equal([i["id"] for i in control.instances(region="eu-west-1")], [eu_id],
                 "/_sim/instances?region= shows it in eu-west-1")
    eu.delete_instance(InstanceId=eu_id)

    # Refused roles and required ExternalIds: AccessDenied (403) until lifted.
    control.config({"refuseAssumeRole": [role_arn]})
    checks.error(lambda: base_sts.assume_role(RoleArn=role_arn, RoleSessionName=session), "AccessDenied", 403,
                 "AssumeRole of a refused role",
                 message_contains=f"is not authorized to perform: sts:AssumeRole on resource: {role_arn}")
    control.config({"refuseAssumeRole": []})
    checks.check("Credentials" in base_sts.assume_role(RoleArn=role_arn, RoleSessionName=session),
                 "AssumeRole works again once the refusal is lifted")
    control.config({"roleExternalIds": {role_arn: "the-right-one"}})
    checks.error(lambda: base_sts.assume_role(RoleArn=role_arn, RoleSessionName=session), "AccessDenied", 403,
                 "AssumeRole without the required ExternalId")
    checks.error(lambda: base_sts.assume_role(RoleArn=role_arn, RoleSessionName=session, ExternalId="wrong-one"),
                 "AccessDenied", 403, "AssumeRole with a wrong ExternalId")
    checks.check("Credentials" in base_sts.assume_role(RoleArn=role_arn, RoleSessionName=session,
                                                       ExternalId="the-right-one"),
                 "AssumeRole with the required ExternalId")
    control.config({"roleExternalIds": {}})

    # Validation the simulator does (botocore checks lengths and ranges itself).
    checks.error(lambda: base_sts.assume_role(RoleArn=role_arn, RoleSessionName="bad name!"), "ValidationError",
                 400, "AssumeRole with a session name outside the pattern", message_contains="roleSessionName")
    checks.error(lambda: base_sts.assume_role(RoleArn="arn:aws:iam::12345:role/short-account",
                                              RoleSessionName=session),
                 "ValidationError", 400, "AssumeRole of a malformed role ARN", message_contains="is invalid")
    checks.error(lambda: base_sts.assume_role(RoleArn=role_arn, RoleSessionName=session, Policy="{nope"),
                 "MalformedPolicyDocument", 400, "AssumeRole with a malformed session policy")

    # The call log has the STS calls with their accounts.
    role_calls = control.calls(f"?accountId={role_account}")
    assumes = [c for c in role_calls if c["operation"] == "AssumeRole"]
    checks.check(assumes and all(c["roleArn"] == role_arn for c in assumes),
                 "AssumeRole is recorded in the role's account with its roleArn")
    checks.check(any(c["operation"] == "GetCallerIdentity" for c in role_calls),
                 "GetCallerIdentity with the assumed keys is recorded in the role's account")
    checks.check(any(c["operation"] == "CreateInstance" and c["instanceId"] == role_instance for c in role_calls),
                 "the role's CreateInstance is recorded in its account")
    checks.check(all(c["accountId"] == role_account for c in role_calls), "?accountId= filters the call log")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    checks = Checks()
    try:
        run(sys.argv[1], checks)
    except Exception as e:  # an unexpected error is a failed check, with what happened
        checks.failed += 1
        print(f"FAIL: unexpected {type(e).__name__}: {e}", flush=True)
    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
