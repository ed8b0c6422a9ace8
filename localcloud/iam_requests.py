"""What IAM is asked for one AWS call: its actions, the resource ARNs and the condition keys.

`requests_for` turns (service, operation, parameters) into IAM requests, one per item where IAM checks per
item (TransactWriteItems, CopyObject's source, PutEvents' buses), with the ARNs AWS would decide on (a secret's
full ARN, an inference profile's or a foundation model's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from localcloud.iam_policy import ACCOUNT_ID, Request


def _s3_object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _copy_source(source: Any) -> tuple[str, str, str | None]:
    if isinstance(source, Mapping):
        return source["Bucket"], source["Key"], source.get("VersionId")
    text, _, query = str(source).lstrip("/").partition("?")
    bucket, _, key = text.partition("/")
    version = query.split("versionId=", 1)[1] if "versionId=" in query else None
    return bucket, unquote(key), version


_S3_OBJECT_ACTIONS = {
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "GetObjectTagging": "s3:GetObjectTagging",
    "PutObjectTagging": "s3:PutObjectTagging",
}
_S3_BUCKET_ACTIONS = {
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetBucketLocation": "s3:GetBucketLocation",
    "PutBucketNotificationConfiguration": "s3:PutBucketNotification",
    "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
}


def _s3_requests(operation: str, params: Mapping[str, Any]) -> list[Request]:
    bucket = params.get("Bucket", "")
    key = params.get("Key", "")
    version = params.get("VersionId")
    if operation in ("GetObject", "HeadObject"):
        return [Request("s3:GetObjectVersion" if version else "s3:GetObject", _s3_object(bucket, key))]
    if operation == "DeleteObject":
        return [Request("s3:DeleteObjectVersion" if version else "s3:DeleteObject", _s3_object(bucket, key))]
    if operation == "DeleteObjects":
        return [
            Request("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject", _s3_object(bucket, o["Key"]))
            for o in params.get("Delete", {}).get("Objects", [])
        ]
    if operation in ("CopyObject", "UploadPartCopy"):
        src_bucket, src_key, src_version = _copy_source(params["CopySource"])
        read = "s3:GetObjectVersion" if src_version else "s3:GetObject"
        return [Request("s3:PutObject", _s3_object(bucket, key)), Request(read, _s3_object(src_bucket, src_key))]
    if operation in _S3_OBJECT_ACTIONS:
        return [Request(_S3_OBJECT_ACTIONS[operation], _s3_object(bucket, key))]
    if operation in _S3_BUCKET_ACTIONS:
        context = {"s3:prefix": params["Prefix"]} if "Prefix" in params else {}
        return [Request(_S3_BUCKET_ACTIONS[operation], f"arn:aws:s3:::{bucket}", context)]
    return [Request(f"s3:{operation}", f"arn:aws:s3:::{bucket}")]


_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _dynamodb_requests(operation: str, params: Mapping[str, Any], region: str) -> list[Request]:
    def table(name: str, index: str | None = None) -> str:
        arn = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    if operation == "TransactWriteItems":
        # IAM authorizes each item of a transaction with the action of its own kind.
        return [
            Request(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table(body["TableName"]))
            for item in params.get("TransactItems", [])
            for kind, body in item.items()
        ]
    if operation == "TransactGetItems":
        return [Request("dynamodb:GetItem", table(i["Get"]["TableName"])) for i in params.get("TransactItems", [])]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [Request(f"dynamodb:{operation}", table(name)) for name in params.get("RequestItems", {})]
    if "TableName" in params:
        return [Request(f"dynamodb:{operation}", table(params["TableName"], params.get("IndexName")))]
    return [Request(f"dynamodb:{operation}", "*")]


def _secret_arn(secret_id: str, region: str) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    try:  # IAM decides on the secret's full ARN (name plus six random characters): ask moto for it.
        from moto.secretsmanager.models import secretsmanager_backends

        secret = secretsmanager_backends[ACCOUNT_ID][region].secrets.get(secret_id)
        if secret is not None:
            return str(secret.arn)
    except (ImportError, KeyError):  # pragma: no cover - moto is always there in the local cloud
        pass
    return f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:{secret_id}-??????"


def _bedrock_model(model_id: str, region: str) -> str:
    if model_id.startswith("arn:"):
        return model_id
    if model_id.split(".", 1)[0] in ("us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"):
        return f"arn:aws:bedrock:{region}:{ACCOUNT_ID}:inference-profile/{model_id}"
    return f"arn:aws:bedrock:{region}::foundation-model/{model_id}"


_BEDROCK_ACTIONS = {
    "Converse": "bedrock:InvokeModel",
    "InvokeModel": "bedrock:InvokeModel",
    "ConverseStream": "bedrock:InvokeModelWithResponseStream",
    "InvokeModelWithResponseStream": "bedrock:InvokeModelWithResponseStream",
}


def requests_for(service: str, operation: str, params: Mapping[str, Any], region: str) -> list[Request]:
    """The IAM requests one API call makes (service is botocore's service name)."""
    if service == "s3":
        return _s3_requests(operation, params)
    if service == "dynamodb":
        return _dynamodb_requests(operation, params, region)
    if service == "stepfunctions":
        arn = params.get("executionArn") or params.get("stateMachineArn") or "*"
        return [Request(f"states:{operation}", arn)]
    if service == "secretsmanager":
        secret = params.get("SecretId")
        return [Request(f"secretsmanager:{operation}", _secret_arn(secret, region) if secret else "*")]
    if service == "events" and operation == "PutEvents":
        buses = {e.get("EventBusName") or "default" for e in params.get("Entries", [])}
        return [
            Request(
                "events:PutEvents",
                bus if bus.startswith("arn:") else f"arn:aws:events:{region}:{ACCOUNT_ID}:event-bus/{bus}",
            )
            for bus in sorted(buses)
        ]
    if service == "bedrock-runtime":
        return [
            Request(_BEDROCK_ACTIONS.get(operation, f"bedrock:{operation}"), _bedrock_model(params["modelId"], region))
        ]
    if service == "lambda":
        name = params.get("FunctionName", "*")
        arn = name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"
        action = "lambda:InvokeFunction" if operation == "Invoke" else f"lambda:{operation}"
        return [Request(action, arn)]
    if service == "sqs":
        url = params.get("QueueUrl", "")
        name = url.rstrip("/").rsplit("/", 1)[-1]
        return [Request(f"sqs:{operation}", f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}" if name else "*")]
    prefix = {"logs": "logs", "xray": "xray", "sts": "sts", "iam": "iam"}.get(service, service)
    return [Request(f"{prefix}:{operation}", "*")]
