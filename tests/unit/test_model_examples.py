"""The OpenAPI document's examples are real: each validates with the model it illustrates."""

from __future__ import annotations

import inspect

import pytest
from pydantic import BaseModel

from batchline import models


def own_example(cls: type) -> bool:
    """A model whose example is its own, not the one a record inherits from the public object it extends."""
    if not issubclass(cls, BaseModel) or not isinstance(cls.model_config.get("json_schema_extra"), dict):
        return False
    extra = cls.model_config["json_schema_extra"]
    return all(getattr(base, "model_config", {}).get("json_schema_extra") != extra for base in cls.__mro__[1:])


EXAMPLED = [cls for _, cls in inspect.getmembers(models, inspect.isclass) if own_example(cls)]


def test_the_public_objects_and_requests_have_examples() -> None:
    names = {cls.__name__ for cls in EXAMPLED}
    assert {
        "FileObject",
        "BatchObject",
        "BatchCreate",
        "JobObject",
        "JobCreate",
        "ModelObject",
        "UploadObject",
    } <= names


@pytest.mark.parametrize("model", EXAMPLED, ids=lambda cls: cls.__name__)
def test_each_example_validates_with_its_model(model: type[BaseModel]) -> None:
    extra = model.model_config["json_schema_extra"]
    assert isinstance(extra, dict)
    for example in extra["examples"]:  # type: ignore[union-attr]
        model.model_validate(example)
