"""What every boundary shares: the strict request base, endpoints, ids, metadata, expiry, lists."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

Endpoint = Literal["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations"]
ENDPOINTS: tuple[Endpoint, ...] = Endpoint.__args__  # type: ignore[attr-defined]
DEFAULT_ENDPOINTS: tuple[Endpoint, ...] = ("/v1/chat/completions",)

CompletionWindow = Literal["24h", "unlimited"]

MIN_EXPIRY_SECONDS = 3600
MAX_EXPIRY_SECONDS = 2_592_000


def canonical_path(url: str) -> str:
    """The one canonical form of an endpoint path: `v1/chat/completions` is `/v1/chat/completions`.

    Used for a batch's endpoint, a job's endpoints, a request line's url when it is validated and
    when it is sent, so that what was checked is what goes upstream.
    """
    return url if not url or url.startswith("/") else "/" + url


def _canonical_endpoint(value: Any) -> Any:
    """Accept `v1/chat/completions` as the SDK may send it; store the canonical form."""
    return canonical_path(value) if isinstance(value, str) else value


CanonicalEndpoint = Annotated[Endpoint, BeforeValidator(_canonical_endpoint)]


def _from_dynamodb(value: Any) -> Any:
    """DynamoDB hands back every number as a Decimal: the int or float it was stored from."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamodb(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamodb(v) for v in value]
    return value


def example(fields: dict[str, Any]) -> ConfigDict:
    """A model's example for the OpenAPI document (GET /openapi.json, /docs)."""
    return ConfigDict(json_schema_extra={"examples": [fields]})


class Model(BaseModel):
    """The base of every model here: its validator and serializer are built when first used, not at import.

    A function uses a few of these models (and FastAPI builds its own for the api's routes): building
    them all at import was 30 ms of the api function's cold start.
    """

    model_config = ConfigDict(defer_build=True)


class Strict(Model):
    """Request bodies: unknown fields are errors, like OpenAI's `Unrecognized request argument`.

    Types are strict, as OpenAI's are: `"3600"` is not a number, `1` is not a string. The same models
    are read back from DynamoDB, whose numbers are Decimals; those alone are converted first.

    A request body is built at import, unlike other models: FastAPI builds a body's adapter when it
    builds its route, silencing a pydantic warning about the field it wraps the body in; deferred, the
    adapter would be built at the body's first validation, warning then. The parts of a body, and answers
    that extend one, are deferred again (`NOT_A_BODY`).
    """

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=False)

    @model_validator(mode="before")
    @classmethod
    def _stored_numbers(cls, data: Any) -> Any:
        return _from_dynamodb(data)


# A Strict model FastAPI never reads as a request body (a part of one, or an answer that extends one):
# built with the body that holds it, or when first used, as the other models are.
NOT_A_BODY = ConfigDict(defer_build=True)


class ExpiresAfter(Strict):
    model_config = NOT_A_BODY

    anchor: Literal["created_at"] = Field(description="Only `created_at` is supported.")
    seconds: int = Field(ge=MIN_EXPIRY_SECONDS, le=MAX_EXPIRY_SECONDS, description="Lifetime in seconds.")


# Ids the service makes are under 64 characters; a client's are bounded before they reach a key or a message.
MAX_ID_CHARS = 128
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]

Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[str, StringConstraints(max_length=512)],
    ],
    Field(max_length=16, description="Up to 16 pairs; keys up to 64 characters, values up to 512."),
]


class Deleted(Model):
    """Answer of a DELETE: `object` is the kind deleted."""

    model_config = example({"id": "file-abc123", "object": "file", "deleted": True})

    id: str
    object: str
    deleted: bool = True


def public[T: BaseModel](model: type[T], record: BaseModel) -> T:
    """The API view of a stored record: only the fields `model` has, each under any name it reads it by (a job's
    `tenant` is its record's `tenant_id`)."""
    return model.model_validate(record.model_dump(include=_read_names(model)))


def _read_names(model: type[BaseModel]) -> set[str]:
    names = set(model.model_fields)
    for field in model.model_fields.values():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names.update(choice for choice in choices if isinstance(choice, str))
    return names


class Page[T](Model):
    """OpenAI's list envelope."""

    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
