"""Idempotency-Key for creates (Powertools Idempotency): the SDK retries 5xx and 409; creates must not repeat."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from batchline.errors import Conflict

# OpenAI keeps idempotency keys for a day; so do we.
KEY_LIFETIME_SECONDS = 24 * 3600


class Idempotency:
    """Runs a create once per (scope, tenant, key); the same key with another request is a conflict."""

    def __init__(self, table_name: str, *, boto3_client: Any = None) -> None:
        self._table_name = table_name
        self._client = boto3_client
        self._config = IdempotencyConfig(
            event_key_jmespath="[scope, tenant, key]",
            payload_validation_jmespath="fingerprint",
            expires_after_seconds=KEY_LIFETIME_SECONDS,
        )

    def register_lambda_context(self, context: Any) -> None:
        """Let an in-progress record expire with the invocation that wrote it."""
        self._config.register_lambda_context(context)

    @cached_property
    def _persistence(self) -> DynamoDBPersistenceLayer:
        return DynamoDBPersistenceLayer(table_name=self._table_name, boto3_client=self._client)

    def run(
        self,
        create: Callable[[], dict[str, Any]],
        *,
        scope: str,
        tenant: str,
        key: str | None,
        fingerprint: Any,
    ) -> dict[str, Any]:
        """`create()` once for this key; its first answer again for a replay. No key: just `create()`."""
        if not key:
            return create()

        @idempotent_function(  # type: ignore[untyped-decorator]
            data_keyword_argument="request", persistence_store=self._persistence, config=self._config
        )
        def once(request: dict[str, Any]) -> dict[str, Any]:
            return create()

        try:
            answer: dict[str, Any] = once(
                request={"scope": scope, "tenant": tenant, "key": key, "fingerprint": fingerprint}
            )
            return answer
        except IdempotencyValidationError as exc:
            raise Conflict(
                "This Idempotency-Key was already used with a different request body.",
                param="Idempotency-Key",
            ) from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise Conflict(
                "A request with this Idempotency-Key is still in progress; retry shortly.",
                param="Idempotency-Key",
                retryable=True,
            ) from exc
