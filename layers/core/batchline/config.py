"""Configuration: one pydantic-settings model per function, read from the environment the template sets."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoreSettings(BaseSettings):
    """What every function needs: where objects live."""

    model_config = SettingsConfigDict(frozen=True)

    table_name: str = Field(min_length=1)
    bucket_name: str = Field(min_length=1)


class ApiSettings(CoreSettings):
    """The api function."""

    admin_key_secret: str = Field(min_length=1, description="Secrets Manager id of the admin API key.")
    key_hash_secret: str = Field(min_length=1, description="Secrets Manager id of the API-key hashing key.")
    idempotency_table: str = Field(min_length=1, description="Powertools Idempotency records of creates.")

    # API Gateway and Lambda cap a request near 6 MB after base64; larger files use the other ways in.
    max_upload_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
