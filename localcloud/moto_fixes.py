"""Every fix the local cloud makes to moto's services and server, installed and removed together.

What each models of AWS, and why moto needs it, is in its own module: DynamoDB's and S3's atomicity
(localcloud.dynamodb, localcloud.s3, on localcloud.serialized), DynamoDB's streams and TTL
(localcloud.streams); what only makes moto fast is under localcloud.speed. A test that runs moto
in-process takes them all with `patching.installed(moto_fixes)`, as the local cloud does.
"""

from __future__ import annotations

from localcloud import dynamodb, s3, streams
from localcloud.speed import dynamodb as fast_dynamodb
from localcloud.speed import s3 as fast_s3
from localcloud.speed import server as fast_server

# Installed in this order, removed in the reverse one.
FIXES = (fast_server, dynamodb, fast_dynamodb, s3, fast_s3, streams)


def install() -> None:
    """Install every fix (idempotent)."""
    for fix in FIXES:
        fix.install()


def uninstall() -> None:
    """Restore what install() replaced."""
    for fix in reversed(FIXES):
        fix.uninstall()
