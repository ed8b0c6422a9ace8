"""S3's check of who is asking, which moto's server skips: presigned URLs verified, anonymous requests refused.

moto answers any request on its port: a presigned URL whose path or signature was changed still writes
(a tenant could edit its upload URL to overwrite another tenant's file), and an unsigned GET lists the
bucket. S3 recomputes a presigned URL's SigV4 signature over the request it received and answers 403
`SignatureDoesNotMatch` when it differs (or `AccessDenied` once `X-Amz-Expires` has passed), and refuses
anonymous requests to a private bucket with 403 `AccessDenied`. This does the same in front of moto's
dispatcher. Requests signed in their Authorization header (every boto3 call) pass unchecked: botocore
signs them itself, and checking them would mean re-reading bodies moto streams (not modelled).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

from localcloud.patching import Patches

ALGORITHM = "AWS4-HMAC-SHA256"
_patches = Patches()
# The access keys this cloud's clients sign with, and their secrets.
_secrets: dict[str, str] = {}


def _error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    ).encode()


FORBIDDEN = frozenset({"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId"})
MISMATCH = (
    "SignatureDoesNotMatch",
    "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _header(environ: Mapping[str, Any], name: str) -> str:
    key = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}.get(
        name, "HTTP_" + name.upper().replace("-", "_")
    )
    return " ".join(str(environ.get(key, "")).split())


def presigned_problem(environ: Mapping[str, Any], secrets: Mapping[str, str], now: float) -> tuple[str, str] | None:
    """Why S3 would refuse this presigned request (code, message), or None when its signature holds."""
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", ""))
    path, _, query_text = raw.partition("?")
    query = parse_qsl(query_text, keep_blank_values=True)
    params = dict(query)
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        return ("AuthorizationQueryParametersError", f"X-Amz-Algorithm only supports {ALGORITHM!r}.")
    try:
        access_key, date, region, service, terminator = params["X-Amz-Credential"].split("/")
        signed_at = datetime.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
        expires = int(params["X-Amz-Expires"])
        signed_headers = params["X-Amz-SignedHeaders"]
        given = params["X-Amz-Signature"]
    except (KeyError, ValueError):
        return ("AuthorizationQueryParametersError", "Query-string authentication requires the X-Amz-* parameters.")
    secret = secrets.get(access_key)
    if secret is None:
        return ("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    if now > signed_at.timestamp() + expires:
        return ("AccessDenied", "Request has expired")
    canonical_query = "&".join(
        f"{_uri_encode(name)}={_uri_encode(value)}" for name, value in sorted(query) if name != "X-Amz-Signature"
    )
    headers = "".join(f"{name}:{_header(environ, name)}\n" for name in signed_headers.split(";"))
    payload = params.get("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
    canonical = "\n".join([str(environ["REQUEST_METHOD"]), path, canonical_query, headers, signed_headers, payload])
    scope = f"{date}/{region}/{service}/{terminator}"
    to_sign = "\n".join([ALGORITHM, params["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = b"AWS4" + secret.encode()
    for part in (date, region, service, terminator):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, given) else MISMATCH


def problem(environ: Mapping[str, Any], secrets: Mapping[str, str], now: float) -> tuple[str, str] | None:
    """Why S3 would refuse the request, or None. moto's own control routes (/moto-api) are not S3's."""
    if str(environ.get("PATH_INFO", "")).startswith("/moto-api"):
        return None
    query = str(environ.get("QUERY_STRING", ""))
    if "X-Amz-Signature=" in query:
        return presigned_problem(environ, secrets, now)
    if "Signature=" in query:  # SigV2 query authentication: buckets since 2020 take only SigV4
        return (
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
        )
    if environ.get("HTTP_AUTHORIZATION"):
        return None
    # No service but S3 is reached unsigned (moto dispatches anonymous requests to S3), and its bucket is private.
    return ("AccessDenied", "Access Denied")


def _checked(original: Callable[..., Iterable[bytes]], clock: Callable[[], float]) -> Callable[..., Iterable[bytes]]:
    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        found = problem(environ, _secrets, clock())
        if found is None:
            return original(self, environ, start_response)
        body = _error(*found)
        status = "403 Forbidden" if found[0] in FORBIDDEN else "400 Bad Request"
        start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]

    return call


def install(secrets: Mapping[str, str], clock: Callable[[], float] = time.time) -> None:
    """Check every request moto's server receives; `secrets`: access key id -> secret access key."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    with _patches.lock:
        _secrets.clear()
        _secrets.update(secrets)
        _patches.patch(DomainDispatcherApplication, "__call__", lambda original: _checked(original, clock))


def uninstall() -> None:
    with _patches.lock:
        _patches.undo()
        _secrets.clear()
