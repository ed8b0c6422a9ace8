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
- What is asked: `requests_for` (localcloud.iam_requests) turns (service, operation, parameters) into IAM requests:
  action, resource ARN and condition keys, one per item where IAM checks per item (TransactWriteItems, CopyObject's
  source, PutEvents).
- How it is decided: `is_allowed` (localcloud.iam_policy): an explicit Deny wins; otherwise some Allow must match
  action, resource and condition. No allow: AccessDenied, in the error shape of the service (here).
- boto3's transfer manager (upload_fileobj, download_fileobj, copy) sends from a thread pool of its own, where
  the caller's context variables are not: its pool runs each task in the context of the thread that submitted it,
  so those calls are judged (and counted, localcloud.metering) as the caller's, not let through as no one's.
- Presigned URLs are authorized when they are signed, against the signing function's role (the role cannot change
  between signing and use in the local cloud, so this is what S3 would decide on use).

The same hook refuses calls over the service quotas moto does not enforce (localcloud.quotas).

Principals come from the SAM-translated template itself (localcloud.iam_roles), with the stack's physical names
substituted, so a policy edited in template.yaml is the policy enforced.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from localcloud import metering, quotas
from localcloud.iam_policy import ACCOUNT_ID, Request, is_allowed
from localcloud.iam_requests import requests_for
from localcloud.patching import Patches

# This module is the IAM emulation's entry: the request vocabulary it decides on (iam_policy, iam_requests) is
# named here too, as callers (lambdas, faults, tests) have always reached it.
__all__ = [
    "ACCOUNT_ID",
    "AccessDeniedError",
    "Principal",
    "Request",
    "ServedAs",
    "access_denied",
    "acting_as",
    "authorize",
    "current",
    "install",
    "is_allowed",
    "register_state_machine",
    "requests_for",
    "uninstall",
]

log = logging.getLogger(__name__)

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


class AccessDeniedError(ClientError):  # type: ignore[misc]  # botocore ships no type hints
    """An AWS call the caller's role does not allow (a ClientError, as boto3 raises it on AWS)."""


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("localcloud_principal", default=None)
# State machine roles, each with the ARNs of its stack's resources (see `register_state_machine`).
_state_machines: list[tuple[Principal, tuple[str, ...]]] = []
_lock = threading.Lock()
_patches = Patches()


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
    return AccessDeniedError(response, operation)


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


def _checking_calls(original: Callable[..., Any]) -> Callable[..., Any]:
    """botocore's `_make_api_call`, checked: quotas, metering and the caller's role, before the call."""

    def checked(self: Any, operation_name: str, api_params: Mapping[str, Any]) -> Any:
        return _checked_make_api_call(original, self, operation_name, api_params)

    return checked


def _checked_make_api_call(
    original: Callable[..., Any], self: Any, operation_name: str, api_params: Mapping[str, Any]
) -> Any:
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
                {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                operation_name,
            ) from exc
        raise


def _checking_presigns(original: Callable[..., Any]) -> Callable[..., Any]:
    """botocore's presigner, checked: a presigned URL is signed only for what the caller's role allows."""

    # botocore's own parameter names: callers pass them as keywords.
    def checked(self: Any, ClientMethod: str, Params: Any = None, *args: Any, **kwargs: Any) -> Any:
        # Clients created while installed keep this presigner; uninstalled, it checks nothing.
        if _patches:
            operation = self.meta.method_to_api_mapping.get(ClientMethod, ClientMethod)
            requests = _call_requests(self, operation, Params or {})
            principal = _caller(self, lambda: requests)
            if principal is not None:
                authorize(principal, self.meta.service_model.service_name, requests, operation)
        return original(self, ClientMethod, Params, *args, **kwargs)

    return checked


class _ContextThreadPool(concurrent.futures.ThreadPoolExecutor):
    """A thread pool whose tasks run in the context of the thread that submitted them (its principal included)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def install() -> None:
    """Check every botocore call and presigned URL made in this process (idempotent)."""
    import botocore.client
    import botocore.signers
    import s3transfer.futures

    with _patches.lock:
        if _patches:
            return
        _patches.patch(botocore.client.BaseClient, "_make_api_call", _checking_calls)
        # Clients get generate_presigned_url from this module attribute when they are created.
        _patches.patch(botocore.signers, "generate_presigned_url", _checking_presigns)
        _patches.patch(s3transfer.futures.BoundedExecutor, "EXECUTOR_CLS", lambda _: _ContextThreadPool)


def uninstall() -> None:
    """Stop checking (clients created meanwhile keep the checked presigner, which then checks nothing)."""
    with _patches.lock:
        if not _patches:
            return
        _patches.undo()
        with _lock:
            _state_machines.clear()
