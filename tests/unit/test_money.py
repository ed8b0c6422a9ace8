"""processing_cost is exact: decimal arithmetic on integer token sums, stated to 1e-10 USD."""

from __future__ import annotations

import json

import pytest

from batchline.models import BatchObject
from batchline.models.batches import processing_cost


def test_a_cost_whose_float_product_is_inexact_is_exact() -> None:
    assert 304 * 0.2 / 1_000_000 == 6.080000000000001e-05  # what float arithmetic says
    assert processing_cost(304, 0.2) == 6.08e-05
    assert json.dumps(processing_cost(304, 0.2)) == "6.08e-05"


@pytest.mark.parametrize(
    ("tokens", "price", "cost"),
    [
        (0, 2.5, 0.0),
        (1, 0.000000001, 0.0),  # below the stated precision
        (3, 0.1, 3e-07),
        (1_000_000_000, 1_000_000.0, 1_000_000_000.0),
        (123_456_789, 0.15, 18.51851835),
    ],
)
def test_costs_at_the_extremes(tokens: int, price: float, cost: float) -> None:
    assert processing_cost(tokens, price) == cost


def test_the_sum_of_segments_costs_what_the_whole_costs() -> None:
    """Tokens are summed before pricing: however a batch is split, its cost is the whole's."""
    segments = [101, 7, 333, 13, 1]
    assert processing_cost(sum(segments), 0.3) == processing_cost(455, 0.3) == 0.0001365


def test_the_batch_object_says_its_unit_and_precision() -> None:
    description = BatchObject.model_json_schema()["properties"]["processing_cost"]["description"]
    assert "USD" in description and "1e-10" in description
