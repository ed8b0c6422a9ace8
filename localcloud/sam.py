"""The SAM transform, offline: samtranslator with a static map of the AWS managed policies, so no IAM call."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

# The AWS managed policies SAM may name, so the transform never asks IAM for the list.
AWS_MANAGED_POLICIES: Mapping[str, str] = {
    name: f"arn:aws:iam::aws:policy/{path}"
    for name, path in {
        "AWSLambdaBasicExecutionRole": "service-role/AWSLambdaBasicExecutionRole",
        "AWSLambdaVPCAccessExecutionRole": "service-role/AWSLambdaVPCAccessExecutionRole",
        "AWSLambdaSQSQueueExecutionRole": "service-role/AWSLambdaSQSQueueExecutionRole",
        "AWSLambdaDynamoDBExecutionRole": "service-role/AWSLambdaDynamoDBExecutionRole",
        "AWSLambdaKinesisExecutionRole": "service-role/AWSLambdaKinesisExecutionRole",
        "AWSLambdaRole": "service-role/AWSLambdaRole",
        "AWSLambdaExecute": "AWSLambdaExecute",
        "AWSXrayWriteOnlyAccess": "AWSXrayWriteOnlyAccess",
        "AWSXRayDaemonWriteAccess": "AWSXRayDaemonWriteAccess",
        "AWSStepFunctionsFullAccess": "AWSStepFunctionsFullAccess",
        "AmazonS3ReadOnlyAccess": "AmazonS3ReadOnlyAccess",
        "AmazonS3FullAccess": "AmazonS3FullAccess",
        "AmazonDynamoDBFullAccess": "AmazonDynamoDBFullAccess",
        "AmazonSQSFullAccess": "AmazonSQSFullAccess",
        "AmazonEventBridgeFullAccess": "AmazonEventBridgeFullAccess",
        "CloudWatchLogsFullAccess": "CloudWatchLogsFullAccess",
        "SecretsManagerReadWrite": "SecretsManagerReadWrite",
    }.items()
}


class StaticManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader (which lists IAM) with `AWS_MANAGED_POLICIES`."""

    def __init__(self, policies: Mapping[str, str] = AWS_MANAGED_POLICIES) -> None:
        self._policy_map = dict(policies)

    def load(self) -> dict[str, str]:
        """The static name -> ARN map."""
        return dict(self._policy_map)


def to_cloudformation(sam: dict[str, Any], parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run the SAM transform offline (samtranslator with a static managed-policy map)."""
    if "Transform" not in sam:
        return copy.deepcopy(sam)
    # Imported here: samtranslator (and botocore with it) is slow to import, and parsing is not.
    from samtranslator.translator.transform import transform

    loader: Any = StaticManagedPolicyLoader()  # transform only ever calls .load()
    translated: dict[str, Any] = transform(copy.deepcopy(sam), dict(parameters or {}), loader)
    return translated
