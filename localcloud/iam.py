"""IAM for the local cloud: every AWS call a function makes is authorized against its own role, as IAM does.

Why not moto's IAM access control: it resolves resources for some services only ("*" for most), turns an Allow
whose Condition does not match into an explicit deny, and knows neither the per-item rule of TransactWriteItems nor
the 403 that S3 answers for a missing key to a caller without s3:ListBucket. So calls are checked in-process, where
the local cloud runs every handler, before botocore sends them:

- Who calls: `acting_as(principal)` sets a context variable for an invocation (lambdas.invoke does it for each
  Lambda; the API served by uvicorn runs under the api function's principal). Context variables follow asyncio tasks
  and `asyncio.to_thread`, so a handler's own concurrency keeps its identity. A client made outside any principal
  (tests, the local cloud's own set-up) is unrestricted, except the clients of moto's Step Functions interpreter
  (signed with its access key "ak"), which act as the state machine's role.
- What is asked: `requests_for` turns (service, operation, parameters) into IAM requests: action, resource ARN and
  condition keys, one per item where IAM checks per item (TransactWriteItems, CopyObject's source, PutEvents).
- How it is decided: `is_allowed`: an explicit Deny wins; otherwise some Allow must match action, resource and
  condition. No allow: AccessDenied, in the error shape of the service.
- boto3's transfer manager (upload_fileobj, download_fileobj, copy) sends from a thread pool of its own, where
  the caller's context variables are not: its pool runs each task in the context of the thread that submitted it,
  so those calls are judged (and counted, localcloud.metering) as the caller's, not let through as no one's.
- Presigned URLs are authorized when they are signed, against the signing function's role (the role cannot change
  between signing and use in the local cloud, so this is what S3 would decide on use).

The same hook refuses calls over the service quotas moto does not enforce (localcloud.quotas).

Principals come from the SAM-translated template itself (`principals_from_template`), with the stack's physical
names substituted, so a policy edited in template.yaml is the policy enforced.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import copy
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from localcloud import metering, quotas

log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
# moto's Step Functions interpreter builds its clients with this access key (moto.stepfunctions.parser ...
# boto_client.boto_client_for): such calls are the state machine's own.
STEP_FUNCTIONS_ACCESS_KEY = "ak"


@dataclass(frozen=True)
class Principal:
    """A role as the local cloud enforces it: its name and its resolved policy statements."""

    name: str
    role_name: str
    statements: tuple[Mapping[str, Any], ...]

    @property
    def arn(self) -> str:
        return f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{self.role_name}/{self.name}"


@dataclass(frozen=True)
class Request:
    """One authorization question: may the principal do `action` on `resource` (with these condition keys)?"""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


class AccessDeniedError(ClientError):
    """An AWS call the caller's role does not allow (a ClientError, as boto3 raises it on AWS)."""


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("localcloud_principal", default=None)
# State machine roles, each with the ARNs of its stack's resources (see `register_state_machine`).
_state_machines: list[tuple[Principal, tuple[str, ...]]] = []
_lock = threading.Lock()
_originals: dict[str, Any] = {}


# ------------------------------------------------------------------------------------------- identity
@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Run the block as `principal` (None: unrestricted)."""
    token = _current.set(principal)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Principal | None:
    """The principal of the running invocation, if any."""
    return _current.get()


def register_state_machine(principal: Principal, resources: Sequence[str]) -> None:
    """Judge moto's interpreter by `principal` when it calls one of `resources` (ARNs, or ARN prefixes).

    moto's interpreter signs every execution's calls alike, so the caller is told apart by what it calls: the
    Lambda functions and the bucket of the state machine's own stack.
    """
    with _lock:
        _state_machines.append((principal, tuple(resources)))


def _state_machine_for(requests: Sequence[Request]) -> Principal | None:
    with _lock:
        for principal, resources in _state_machines:
            if any(r.resource.startswith(prefix) for r in requests for prefix in resources):
                return principal
    return None


class ServedAs:
    """An ASGI app that serves every request of `app` as `principal` (the api function behind API Gateway).

    Other attributes are the app's own (FastAPI's `dependency_overrides`, `routes`, ...).
    """

    def __init__(self, app: Any, principal: Principal | None) -> None:
        self.app = app
        self.principal = principal

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        with acting_as(self.principal):
            await self.app(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)


def _caller(client: Any, requests: Callable[[], Sequence[Request]]) -> Principal | None:
    principal = _current.get()
    if principal is not None:
        return principal
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    if credentials is not None and getattr(credentials, "access_key", None) == STEP_FUNCTIONS_ACCESS_KEY:
        return _state_machine_for(requests())
    return None


# ------------------------------------------------------------------------------------------- decision
def _matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    # IAM wildcards: * any run of characters (slashes included), ? one character; nothing else is special.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


_CONDITIONS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda actual, expected: actual == expected,
    "StringNotEquals": lambda actual, expected: actual != expected,
    "StringLike": lambda actual, expected: _matches(expected, actual),
    "StringNotLike": lambda actual, expected: not _matches(expected, actual),
    "ArnEquals": lambda actual, expected: actual == expected,
    "ArnLike": lambda actual, expected: _matches(expected, actual),
    "Bool": lambda actual, expected: actual.lower() == str(expected).lower(),
}


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    keys = {key.lower(): value for key, value in context.items()}
    for operator, tests in condition.items():
        name, if_exists = (operator[:-8], True) if operator.endswith("IfExists") else (operator, False)
        compare = _CONDITIONS.get(name)
        if compare is None:
            # Unknown operators never grant: the local cloud must not be more lenient than IAM.
            log.warning("IAM condition operator %s is not emulated; treated as not matching", operator)
            return False
        negated = "Not" in name
        for key, expected in tests.items():
            actual = keys.get(key.lower())
            if actual is None:
                if not if_exists:
                    return False
                continue
            results = [compare(actual, str(e)) for e in _as_list(expected)]
            if not (all(results) if negated else any(results)):
                return False
    return True


def _statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not any(_matches(a, request.action, ignore_case=True) for a in _as_list(statement["Action"])):
            return False
    elif any(_matches(a, request.action, ignore_case=True) for a in _as_list(statement.get("NotAction", []))):
        return False
    if "Resource" in statement:
        if not any(_matches(r, request.resource) for r in _as_list(statement["Resource"])):
            return False
    elif any(_matches(r, request.resource) for r in _as_list(statement.get("NotResource", []))):
        return False
    return _condition_holds(statement.get("Condition") or {}, request.context)


def is_allowed(statements: Sequence[Mapping[str, Any]], request: Request) -> bool:
    """IAM's evaluation for one identity: an explicit Deny wins, else an Allow must apply."""
    applicable = [s for s in statements if _statement_applies(s, request)]
    if any(s.get("Effect") == "Deny" for s in applicable):
        return False
    return any(s.get("Effect") == "Allow" for s in applicable)


# ------------------------------------------------------------------------------------------- requests
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


_JSON_DENIED = {"dynamodb", "stepfunctions", "secretsmanager", "events", "bedrock-runtime", "lambda", "logs", "sqs"}


def access_denied(principal: Principal, request: Request, operation: str, service: str) -> AccessDeniedError:
    """The error AWS answers, in the shape of the service."""
    message = (
        f"User: {principal.arn} is not authorized to perform: {request.action} on resource: {request.resource} "
        f"because no identity-based policy allows the {request.action} action"
    )
    code = "AccessDeniedException" if service in _JSON_DENIED else "AccessDenied"
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 403 if code == "AccessDenied" else 400},
    }
    return AccessDeniedError(response, operation)  # type: ignore[arg-type]


def authorize(principal: Principal, service: str, requests: Sequence[Request], operation: str) -> None:
    """Raise AccessDenied unless the principal may make every request of this call."""
    for request in requests:
        if not is_allowed(principal.statements, request):
            log.info("denied %s %s on %s", principal.name, request.action, request.resource)
            raise access_denied(principal, request, operation, service)


def _missing_key(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return (
        error.get("Code") in ("NoSuchKey", "404")
        or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404
    )


def _may_list(principal: Principal, bucket: str) -> bool:
    # A GET or HEAD carries no s3:prefix: a ListBucket allowed only for some prefix does not count here.
    return is_allowed(principal.statements, Request("s3:ListBucket", f"arn:aws:s3:::{bucket}"))


# ---------------------------------------------------------------------------------------------- hooks
def _call_requests(client: Any, operation: str, params: Mapping[str, Any]) -> list[Request]:
    return requests_for(
        client.meta.service_model.service_name, operation, params, client.meta.region_name or "us-east-1"
    )


def _checked_make_api_call(self: Any, operation_name: str, api_params: Mapping[str, Any]) -> Any:
    original = _originals["make_api_call"]
    # Quotas bind every caller, checked or not.
    quotas.check(self.meta.service_model.service_name, operation_name, api_params)
    requests = _call_requests(self, operation_name, api_params)
    principal = _caller(self, lambda: requests)
    service = self.meta.service_model.service_name
    metering.api_call(principal.name if principal else metering.UNATTRIBUTED, service, operation_name)
    if principal is None:
        return original(self, operation_name, api_params)
    authorize(principal, service, requests, operation_name)
    try:
        return original(self, operation_name, api_params)
    except ClientError as exc:
        # Without s3:ListBucket, S3 answers a missing key with 403, not 404: it must not reveal what is absent.
        if (
            service == "s3"
            and operation_name in ("GetObject", "HeadObject")
            and _missing_key(exc)
            and not _may_list(principal, api_params.get("Bucket", ""))
        ):
            code, message = (
                ("403", "Forbidden") if operation_name == "HeadObject" else ("AccessDenied", "Access Denied")
            )
            raise AccessDeniedError(
                {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 403}},  # type: ignore[arg-type]
                operation_name,
            ) from exc
        raise


# botocore's own parameter names: callers pass them as keywords.
def _checked_presign(self: Any, ClientMethod: str, Params: Any = None, *args: Any, **kwargs: Any) -> Any:
    operation = self.meta.method_to_api_mapping.get(ClientMethod, ClientMethod)
    requests = _call_requests(self, operation, Params or {})
    principal = _caller(self, lambda: requests)
    if principal is not None:
        authorize(principal, self.meta.service_model.service_name, requests, operation)
    return _originals["presign"](self, ClientMethod, Params, *args, **kwargs)


class _ContextThreadPool(concurrent.futures.ThreadPoolExecutor):
    """A thread pool whose tasks run in the context of the thread that submitted them (its principal included)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def install() -> None:
    """Check every botocore call and presigned URL made in this process (idempotent)."""
    import botocore.client
    import botocore.signers
    import s3transfer.futures

    with _lock:
        if _originals:
            return
        _originals["make_api_call"] = botocore.client.BaseClient._make_api_call
        _originals["presign"] = botocore.signers.generate_presigned_url
        _originals["transfer_pool"] = s3transfer.futures.BoundedExecutor.EXECUTOR_CLS
        botocore.client.BaseClient._make_api_call = _checked_make_api_call  # type: ignore[method-assign]
        # Clients get generate_presigned_url from this module attribute when they are created.
        botocore.signers.generate_presigned_url = _checked_presign
        s3transfer.futures.BoundedExecutor.EXECUTOR_CLS = _ContextThreadPool


def uninstall() -> None:
    """Stop checking (clients created meanwhile keep the checked presigner, which then checks nothing)."""
    import botocore.client
    import botocore.signers
    import s3transfer.futures

    with _lock:
        if not _originals:
            return
        botocore.client.BaseClient._make_api_call = _originals.pop("make_api_call")  # type: ignore[method-assign]
        botocore.signers.generate_presigned_url = _originals.pop("presign")
        s3transfer.futures.BoundedExecutor.EXECUTOR_CLS = _originals.pop("transfer_pool")
        _state_machines.clear()


# ------------------------------------------------------------------------------- policies from template
Attributes = Mapping[str, Mapping[str, str]]
"""Logical id -> {"Ref": physical id, "Arn": ..., "Name": ...}: what a template's intrinsics resolve to."""


def attributes_of(kind: str, physical_id: str, *, region: str, account: str = ACCOUNT_ID) -> dict[str, str]:
    """Ref and GetAtt values of a resource, as CloudFormation gives them for its type."""
    values = {"Ref": physical_id}
    if kind == "AWS::DynamoDB::Table":
        values["Arn"] = f"arn:aws:dynamodb:{region}:{account}:table/{physical_id}"
        values["StreamArn"] = f"{values['Arn']}/stream/*"
    elif kind == "AWS::S3::Bucket":
        values["Arn"] = f"arn:aws:s3:::{physical_id}"
    elif kind == "AWS::Lambda::Function":
        values["Arn"] = f"arn:aws:lambda:{region}:{account}:function:{physical_id}"
    elif kind == "AWS::StepFunctions::StateMachine":
        values.update(Arn=physical_id, Name=physical_id.rsplit(":", 1)[-1])
    elif kind == "AWS::SQS::Queue":
        name = physical_id.rstrip("/").rsplit("/", 1)[-1]
        values.update(Arn=f"arn:aws:sqs:{region}:{account}:{name}", QueueName=name, QueueUrl=physical_id)
    elif kind == "AWS::SecretsManager::Secret":
        values["Id"] = physical_id
    elif kind == "AWS::IAM::Role":
        values["Arn"] = f"arn:aws:iam::{account}:role/{physical_id}"
    elif kind == "AWS::Logs::LogGroup":
        values["Arn"] = f"arn:aws:logs:{region}:{account}:log-group:{physical_id}:*"
    return values


def resolve(value: Any, attributes: Attributes, pseudo: Mapping[str, str]) -> Any:
    """A template fragment with Ref, GetAtt, Sub and Join resolved to literals."""
    if isinstance(value, list):
        return [resolve(v, attributes, pseudo) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, operand),) = value.items()
        if key == "Ref":
            return pseudo[operand] if operand in pseudo else attributes[operand]["Ref"]
        if key == "Fn::GetAtt":
            name, attribute = operand.split(".", 1) if isinstance(operand, str) else operand
            return attributes[name][attribute]
        if key == "Fn::Sub":
            text, variables = (operand, {}) if isinstance(operand, str) else operand
            bound = {k: resolve(v, attributes, pseudo) for k, v in variables.items()}

            def token(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in bound:
                    return str(bound[name])
                if name in pseudo:
                    return pseudo[name]
                logical, _, attribute = name.partition(".")
                return attributes[logical][attribute or "Ref"]

            return re.sub(r"\$\{([^!}][^}]*)\}", token, text).replace("${!", "${")
        if key == "Fn::Join":
            separator, parts = operand
            return separator.join(str(p) for p in resolve(parts, attributes, pseudo))
    return {k: resolve(v, attributes, pseudo) for k, v in value.items()}


def _role_statements(
    role: Mapping[str, Any], attributes: Attributes, pseudo: Mapping[str, str]
) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in role.get("Policies", []):
        document = resolve(copy.deepcopy(policy["PolicyDocument"]), attributes, pseudo)
        statements.extend(_as_list(document.get("Statement", [])))
    # The AWS managed policies SAM attaches (logs, X-Ray) grant nothing the functions call through boto3.
    return statements


def pseudo_parameters(
    cfn: Mapping[str, Any],
    *,
    region: str,
    stack_name: str,
    parameters: Mapping[str, str] | None = None,
    account: str = ACCOUNT_ID,
) -> dict[str, str]:
    """What `Ref` of a parameter (given, else its Default) or a pseudo parameter resolves to."""
    given = dict(parameters or {})
    return {
        **{name: str(given.get(name, spec.get("Default", ""))) for name, spec in cfn.get("Parameters", {}).items()},
        "AWS::Region": region,
        "AWS::AccountId": account,
        "AWS::Partition": "aws",
        "AWS::StackName": stack_name,
        "AWS::URLSuffix": "amazonaws.com",
    }


def principals_from_template(
    cfn: Mapping[str, Any], attributes: Attributes, pseudo: Mapping[str, str]
) -> dict[str, Principal]:
    """Each function's (and state machine's) principal, by logical id, from a translated template."""
    resources = cfn.get("Resources", {})
    principals: dict[str, Principal] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") not in ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine"):
            continue
        role_ref = resource.get("Properties", {}).get("Role") or resource.get("Properties", {}).get("RoleArn")
        role_id = role_ref.get("Fn::GetAtt", [None])[0] if isinstance(role_ref, dict) else None
        role = resources.get(role_id or "", {})
        if role.get("Type") != "AWS::IAM::Role":
            log.warning("%s has no role of the stack's own; its calls are not checked", logical_id)
            continue
        role_name = attributes.get(role_id or "", {}).get("Ref", role_id or "")
        statements = _role_statements(role.get("Properties", {}), attributes, pseudo)
        principals[logical_id] = Principal(logical_id, role_name, tuple(statements))
    return principals
