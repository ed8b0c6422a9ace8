"""Starting a batch's run: one Step Functions execution, named by the batch id."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError


class Runs:
    """Starts executions of the batch state machine; the client is created on first use."""

    def __init__(self, state_machine_arn: str, *, client: Any = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("stepfunctions")
        return self._client

    def start(self, batch_id: str) -> None:
        """Start the run; a run already started for this batch (a repeated event or retry) is left alone."""
        try:
            self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=batch_id, input=json.dumps({"batch_id": batch_id})
            )
        except ClientError as exc:
            # Named executions are unique: a second start of the same batch is a duplicate, not a fault.
            if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
