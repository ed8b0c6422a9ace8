"""Test settings shared by every scope: fake AWS credentials, a region, no instance metadata."""

import os

# Set before any boto3 client exists: tests must never find real credentials or call real AWS.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_METRICS_NAMESPACE="Batchline",
    POWERTOOLS_SERVICE_NAME="batchline",
    POWERTOOLS_DEV="false",
)
os.environ.pop("AWS_PROFILE", None)
