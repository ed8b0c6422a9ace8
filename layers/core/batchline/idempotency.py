"""Idempotency-Key for creates (Powertools Idempotency): the SDK retries 5xx and 409; creates must not repeat."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from batchline.errors import Conflict

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

# OpenAI keeps idempotency keys for a day; so do we.
KEY_LIFETIME_SECONDS = 24 * 3600


class Idempotency:
    """Runs a create once per (scope, tenant, key); the same key with another request is a conflict.

    Powertools' idempotency is imported when a keyed create first runs: its package imports boto3 (100 ms
    of cold start), which a request without an Idempotency-Key (or one refused before) never needs.
    """

    def __init__(self, table_name: str, *, boto3_client: Any = None) -> None:
        self._table_name = table_name
        self._client = boto3_client
        self._lambda_context: Any = None

    def register_lambda_context(self, context: Any) -> None:
        """Let an in-progress record expire with the invocation that wrote it (applied when a create runs)."""
        self._lambda_context = context

    @cached_property
    def _config(self) -> IdempotencyConfig:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig  # deferred: see the class

        return IdempotencyConfig(
            event_key_jmespath="[scope, tenant, key]",
            payload_validation_jmespath="fingerprint",
            expires_after_seconds=KEY_LIFETIME_SECONDS,
        )

    @cached_property
    def _persistence(self) -> DynamoDBPersistenceLayer:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer  # deferred: see the class

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
        # Deferred: see the class.
        from aws_lambda_powertools.utilities.idempotency import idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyValidationError,
        )

        self._config.register_lambda_context(self._lambda_context)

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
