"""Secret values from AWS Secrets Manager, cached per warm container."""

from collections.abc import Callable

from aws_lambda_powertools.utilities import parameters

SECRET_CACHE_SECONDS = 300


def secrets_manager_getter(max_age: int = SECRET_CACHE_SECONDS) -> Callable[[str], str]:
    """A getter of secret strings by name or ARN; Powertools caches each for `max_age` seconds."""

    def get(name: str) -> str:
        return str(parameters.get_secret(name, max_age=max_age))

    return get
