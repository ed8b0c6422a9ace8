"""Secret values from AWS Secrets Manager, cached per warm container."""

from collections.abc import Callable

SECRET_CACHE_SECONDS = 300


def secrets_manager_getter(max_age: int = SECRET_CACHE_SECONDS) -> Callable[[str], str]:
    """A getter of secret strings by name or ARN; Powertools caches each for `max_age` seconds."""

    def get(name: str) -> str:
        # Deferred: Powertools' parameters package imports boto3 (100 ms of cold start), which a request
        # refused before it needs a secret (no API key) never uses.
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_secret(name, max_age=max_age))

    return get
