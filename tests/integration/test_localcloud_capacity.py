"""DynamoDB capacity units, metered per table, partition key and second as on-demand DynamoDB bills them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud import capacity, capacity_units, metering, moto_fixes
from localcloud.capacity import Peak
from localcloud.cloud import LocalCloud
from localcloud.patching import installed

TABLE = "capacity-table"
INDEX = "by-owner"
KB = 1024


class Clock:
    """A clock the test moves by hand: no sleeps, no wall clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    """moto in-process (no local cloud), with a table keyed (pk, sk) and a KEYS_ONLY index on `owner`."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "owner", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": INDEX,
                    "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
        )
        yield client


def item(pk: str, size: int, sk: str = "a") -> dict[str, Any]:
    """An item of exactly `size` bytes as DynamoDB sizes it: names and string values in UTF-8, padded."""
    used = len("pk") + len(pk) + len("sk") + len(sk) + len("fill")
    return {"pk": {"S": pk}, "sk": {"S": sk}, "fill": {"S": "x" * (size - used)}}


def key(pk: str, sk: str = "a") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def rcu(units: float) -> dict[str, float]:
    """The units of a partition key (in by_partition()) that only read."""
    return {"rcu": units, "wcu": 0.0}


def wcu(units: float) -> dict[str, float]:
    """The units of a partition key (in by_partition()) that only wrote."""
    return {"rcu": 0.0, "wcu": units}


# ------------------------------------------------------------------------------------------- item size


def test_an_items_size_is_its_names_and_values_as_dynamodb_counts_them() -> None:
    assert capacity_units.item_size({"name": {"S": "héllo"}}) == 4 + 6  # UTF-8 bytes of name and value
    assert capacity_units.item_size({"b": {"B": b"\x00\x01\x02"}}) == 1 + 3  # raw bytes, not their base64
    # Numbers: 1 byte per two significant digits (leading and trailing zeroes trimmed), plus 1.
    assert capacity_units.item_size({"n": {"N": "12345"}}) == 1 + 3 + 1
    assert capacity_units.item_size({"n": {"N": "-0012.3400"}}) == 1 + 2 + 1
    assert capacity_units.item_size({"n": {"N": "7"}}) == 1 + 1 + 1
    assert capacity_units.item_size({"ok": {"BOOL": True}, "no": {"NULL": True}}) == (2 + 1) + (2 + 1)
    # A list or map: 3 bytes, plus each element and 1 byte per element (a map's element names count too).
    assert capacity_units.item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (2 + 1) + (2 + 1)
    assert capacity_units.item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)
    assert capacity_units.item_size({"m": {"M": {}}}) == 1 + 3
    # A set: the sum of its elements.
    assert capacity_units.item_size({"ss": {"SS": ["a", "bc"]}, "ns": {"NS": ["12", "3"]}}) == (2 + 3) + (2 + 2 + 2)


# ---------------------------------------------------------------------------------------------- reads


def test_a_5_kb_item_read_strongly_costs_2_rcu_and_eventually_1(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=item("job-1", 5 * KB))
    with capacity.metered(Clock()) as meter:
        dynamodb.get_item(TableName=TABLE, Key=key("job-1"), ConsistentRead=True)
        assert meter.totals() == {"rcu": 2.0, "wcu": 0.0}
        meter.reset()
        dynamodb.get_item(TableName=TABLE, Key=key("job-1"))  # eventually consistent, the default
        assert meter.totals() == {"rcu": 1.0, "wcu": 0.0}
        meter.reset()
        # What is projected does not change what is read.
        dynamodb.get_item(TableName=TABLE, Key=key("job-1"), ProjectionExpression="pk", ConsistentRead=True)
        assert meter.totals()["rcu"] == 2.0


def test_reading_an_absent_item_still_costs_the_minimum(dynamodb: Any) -> None:
    with capacity.metered(Clock()) as meter:
        dynamodb.get_item(TableName=TABLE, Key=key("nobody"), ConsistentRead=True)
        dynamodb.get_item(TableName=TABLE, Key=key("nobody"))
    assert meter.totals() == {"rcu": 1.5, "wcu": 0.0}
    assert meter.by_partition() == {(TABLE, "nobody"): rcu(1.5)}


def test_a_query_sums_its_items_before_the_filter_then_rounds_once(dynamodb: Any) -> None:
    for sk in ("a", "b", "c"):
        dynamodb.put_item(TableName=TABLE, Item=item("job-1", 1536, sk=sk))
    dynamodb.put_item(TableName=TABLE, Item=item("job-2", 4 * KB))
    query = {
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "job-1"}},
    }
    with capacity.metered(Clock()) as meter:
        assert len(dynamodb.query(**query, ConsistentRead=True)["Items"]) == 3
        # 3 x 1.5 KB = 4.5 KB, rounded up once to 8 KB: 2 RCU (each item rounded alone would be 3).
        assert meter.totals()["rcu"] == 2.0
        meter.reset()
        dynamodb.query(**query)
        assert meter.totals()["rcu"] == 1.0
        meter.reset()
        # A filter drops items after they were read: they are billed all the same.
        filtered = dynamodb.query(
            **{**query, "ExpressionAttributeValues": {":pk": {"S": "job-1"}, ":no": {"S": "nothing"}}},
            FilterExpression="fill = :no",
            ConsistentRead=True,
        )
        assert filtered["Items"] == []
        assert meter.totals()["rcu"] == 2.0
    assert meter.by_partition() == {(TABLE, "job-1"): rcu(2.0)}


def test_a_scan_is_billed_per_partition_on_the_items_it_evaluates(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=item("job-1", 3 * KB, sk="a"))
    dynamodb.put_item(TableName=TABLE, Item=item("job-1", 3 * KB, sk="b"))
    dynamodb.put_item(TableName=TABLE, Item=item("job-2", 1 * KB))
    with capacity.metered(Clock()) as meter:
        dynamodb.scan(
            TableName=TABLE,
            ConsistentRead=True,
            FilterExpression="pk = :none",
            ExpressionAttributeValues={":none": {"S": "none"}},
        )
    assert meter.by_partition() == {
        (TABLE, "job-1"): rcu(2.0),
        (TABLE, "job-2"): rcu(1.0),
    }


def test_batch_get_reads_each_item_alone_and_transact_get_costs_two_per_4_kb(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=item("job-1", 1536))
    dynamodb.put_item(TableName=TABLE, Item=item("job-2", 6656))
    with capacity.metered(Clock()) as meter:
        dynamodb.batch_get_item(RequestItems={TABLE: {"Keys": [key("job-1"), key("job-2")], "ConsistentRead": True}})
        # 1.5 KB and 6.5 KB are 4 KB + 8 KB, not 8 KB together: 3 RCU.
        assert meter.totals()["rcu"] == 3.0
        meter.reset()
        dynamodb.transact_get_items(
            TransactItems=[
                {"Get": {"TableName": TABLE, "Key": key("job-1")}},
                {"Get": {"TableName": TABLE, "Key": key("job-2")}},
            ]
        )
        assert meter.by_partition() == {
            (TABLE, "job-1"): rcu(2.0),
            (TABLE, "job-2"): rcu(4.0),
        }


# --------------------------------------------------------------------------------------------- writes


def test_a_1_5_kb_put_costs_2_wcu(dynamodb: Any) -> None:
    with capacity.metered(Clock()) as meter:
        dynamodb.put_item(TableName=TABLE, Item=item("job-1", 1536))
    assert meter.totals() == {"rcu": 0.0, "wcu": 2.0}
    assert meter.by_partition() == {(TABLE, "job-1"): wcu(2.0)}


def test_an_update_that_shrinks_an_item_is_billed_on_its_size_before(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=item("job-1", 3 * KB))
    with capacity.metered(Clock()) as meter:
        dynamodb.update_item(TableName=TABLE, Key=key("job-1"), UpdateExpression="REMOVE fill")
    assert meter.totals()["wcu"] == 3.0
    # And one that grows an item, on its size after.
    with capacity.metered(Clock()) as meter:
        dynamodb.update_item(
            TableName=TABLE,
            Key=key("job-1"),
            UpdateExpression="SET fill = :pad",
            ExpressionAttributeValues={":pad": {"S": "x" * (2 * KB)}},
        )
    assert meter.totals()["wcu"] == 3.0


def test_a_failed_conditional_put_is_still_billed(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=item("job-1", 2560))
    with capacity.metered(Clock()) as meter, pytest.raises(ClientError) as refused:
        dynamodb.put_item(TableName=TABLE, Item=item("job-1", 200), ConditionExpression="attribute_not_exists(pk)")
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    # The larger of the item there (2.5 KB) and the one it would have written.
    assert meter.totals()["wcu"] == 3.0
    # An update whose condition fails on an absent item: the minimum, 1 WCU.
    with capacity.metered(Clock()) as meter, pytest.raises(ClientError):
        dynamodb.update_item(
            TableName=TABLE,
            Key=key("nobody"),
            UpdateExpression="SET a = :a",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":a": {"S": "x"}},
        )
    assert meter.by_partition() == {(TABLE, "nobody"): wcu(1.0)}


def test_a_request_moto_refuses_as_invalid_consumes_nothing(dynamodb: Any) -> None:
    with capacity.metered(Clock()) as meter, pytest.raises(ClientError):
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "job-1"}})  # no sort key
    assert meter.totals() == {"rcu": 0.0, "wcu": 0.0}


def test_a_delete_is_billed_on_the_deleted_item_and_batch_writes_per_item(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=item("job-1", 2560))
    with capacity.metered(Clock()) as meter:
        dynamodb.delete_item(TableName=TABLE, Key=key("job-1"))
        dynamodb.delete_item(TableName=TABLE, Key=key("job-1"))  # nothing left: still 1
        assert meter.totals()["wcu"] == 3.0 + 1.0
        meter.reset()
        dynamodb.batch_write_item(
            RequestItems={
                TABLE: [{"PutRequest": {"Item": item("job-2", 500)}}, {"PutRequest": {"Item": item("job-3", 3584)}}]
            }
        )
        # 500 bytes and 3.5 KB are 1 KB + 4 KB: 5 WCU.
        assert meter.by_partition() == {
            (TABLE, "job-2"): wcu(1.0),
            (TABLE, "job-3"): wcu(4.0),
        }


# ------------------------------------------------------------------------------------------ transactions


def test_a_transact_write_of_two_items_is_billed_double(dynamodb: Any) -> None:
    with capacity.metered(Clock()) as meter:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": item("job-1", 1536)}},
                {"Put": {"TableName": TABLE, "Item": item("job-2", 500)}},
            ]
        )
    assert meter.by_partition() == {
        (TABLE, "job-1"): wcu(4.0),
        (TABLE, "job-2"): wcu(2.0),
    }


def test_a_condition_check_is_a_transactional_write_and_a_cancelled_transaction_still_consumes(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=item("job-1", 1536))
    check = {"ConditionCheck": {"TableName": TABLE, "Key": key("job-1"), "ConditionExpression": "attribute_exists(pk)"}}
    with capacity.metered(Clock()) as meter:
        dynamodb.transact_write_items(TransactItems=[check, {"Put": {"TableName": TABLE, "Item": item("job-2", 500)}}])
        assert meter.by_partition() == {
            (TABLE, "job-1"): wcu(4.0),
            (TABLE, "job-2"): wcu(2.0),
        }
        meter.reset()
        refusing = {**check["ConditionCheck"], "ConditionExpression": "attribute_not_exists(pk)"}
        with pytest.raises(ClientError) as cancelled:
            dynamodb.transact_write_items(
                TransactItems=[{"ConditionCheck": refusing}, {"Put": {"TableName": TABLE, "Item": item("job-3", 2560)}}]
            )
        assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
        assert meter.by_partition() == {
            (TABLE, "job-1"): wcu(4.0),
            (TABLE, "job-3"): wcu(6.0),
        }
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=key("job-3"))


def test_a_cancelled_transaction_is_billed_as_well_under_the_local_clouds_journaled_transactions(dynamodb: Any) -> None:
    # localcloud.moto_fixes serializes requests and rolls a cancelled transaction back from its own journal.
    dynamodb.put_item(TableName=TABLE, Item=item("job-1", 500))
    with installed(moto_fixes), capacity.metered(Clock()) as meter, pytest.raises(ClientError):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": item("job-2", 1536)}},
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": item("job-1", 500),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    assert meter.by_partition() == {(TABLE, "job-1"): wcu(2.0), (TABLE, "job-2"): wcu(4.0)}
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=key("job-2"))


# ------------------------------------------------------------------------------------- global indexes


def test_an_index_is_written_and_queried_on_its_own_partition_key(dynamodb: Any) -> None:
    owned = {**item("job-1", 1536), "owner": {"S": "tenant-a"}}
    index = f"{TABLE}/index/{INDEX}"
    with capacity.metered(Clock()) as meter:
        dynamodb.put_item(TableName=TABLE, Item=owned)
        # The index holds the keys only (KEYS_ONLY): one write of under 1 KB on the owner's partition.
        assert meter.by_partition() == {
            (TABLE, "job-1"): wcu(2.0),
            (index, "tenant-a"): wcu(1.0),
        }
        meter.reset()
        # A changed index key: a delete from the old owner's partition and a put on the new one's.
        dynamodb.update_item(
            TableName=TABLE,
            Key=key("job-1"),
            UpdateExpression="SET #o = :o",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": {"S": "tenant-b"}},
        )
        assert meter.by_partition() == {
            (TABLE, "job-1"): wcu(2.0),
            (index, "tenant-a"): wcu(1.0),
            (index, "tenant-b"): wcu(1.0),
        }
        meter.reset()
        # An attribute the index does not project changes nothing in it.
        dynamodb.update_item(
            TableName=TABLE,
            Key=key("job-1"),
            UpdateExpression="SET fill = :p",
            ExpressionAttributeValues={":p": {"S": "y"}},
        )
        assert meter.by_partition() == {(TABLE, "job-1"): wcu(2.0)}
        meter.reset()
        dynamodb.query(
            TableName=TABLE,
            IndexName=INDEX,
            KeyConditionExpression="#o = :o",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": {"S": "tenant-b"}},
        )
        # An index is read eventually consistent: half a unit for its one small entry.
        assert meter.by_partition() == {(index, "tenant-b"): rcu(0.5)}


# ------------------------------------------------------------------------------------ per second, peaks


def test_units_are_attributed_per_second_and_partition_and_peaks_picks_the_highest(dynamodb: Any) -> None:
    clock = Clock(100.2)
    with capacity.metered(clock) as meter:
        assert meter.peaks() == {"rcu": None, "wcu": None}
        for n in range(3):
            dynamodb.put_item(TableName=TABLE, Item=item("a", 700, sk=str(n)))
        for n in range(2):
            dynamodb.put_item(TableName=TABLE, Item=item("b", 700, sk=str(n)))
        dynamodb.get_item(TableName=TABLE, Key=key("a", "0"), ConsistentRead=True)
        clock.now = 101.9
        dynamodb.put_item(TableName=TABLE, Item=item("a", 700, sk="3"))
        for n in range(2, 6):
            dynamodb.put_item(TableName=TABLE, Item=item("b", 700, sk=str(n)))
    # Per partition b wrote most (6), per second both wrote 5: the peak is b's 4 in second 101.
    assert meter.peaks() == {"rcu": Peak(1.0, TABLE, "a", 100), "wcu": Peak(4.0, TABLE, "b", 101)}
    assert meter.totals() == {"rcu": 1.0, "wcu": 10.0}
    assert meter.by_partition() == {(TABLE, "a"): {"rcu": 1.0, "wcu": 4.0}, (TABLE, "b"): wcu(6.0)}
    # Only units metered while the block ran: nothing is counted after it.
    dynamodb.put_item(TableName=TABLE, Item=item("b", 700, sk="9"))
    assert meter.totals()["wcu"] == 10.0


def test_the_clock_can_be_set_and_peaks_can_be_asked_of_one_table(dynamodb: Any) -> None:
    index = f"{TABLE}/index/{INDEX}"
    with capacity.metered(Clock(5.0)) as meter:
        dynamodb.put_item(TableName=TABLE, Item={**item("job-1", 1536), "owner": {"S": "tenant-a"}})
        meter.clock = Clock(7.5)
        for pk in ("job-2", "job-3", "job-4"):
            dynamodb.put_item(TableName=TABLE, Item={**item(pk, 500), "owner": {"S": "tenant-a"}})
    # Every item lands on tenant-a's index partition: 3 writes in second 7, more than any key of the table.
    assert meter.peaks()["wcu"] == Peak(3.0, index, "tenant-a", 7)
    assert meter.peaks(table=TABLE)["wcu"] == Peak(2.0, TABLE, "job-1", 5)
    assert meter.peaks(table=index)["wcu"] == Peak(3.0, index, "tenant-a", 7)
    meter.reset()
    assert meter.peaks() == {"rcu": None, "wcu": None}
    assert meter.totals() == {"rcu": 0.0, "wcu": 0.0}


def test_equal_peaks_go_to_the_earliest_second(dynamodb: Any) -> None:
    clock = Clock(3.0)
    with capacity.metered(clock) as meter:
        dynamodb.put_item(TableName=TABLE, Item=item("late", 500))
        clock.now = 2.0
        dynamodb.put_item(TableName=TABLE, Item=item("early", 500))
    assert meter.peaks()["wcu"] == Peak(1.0, TABLE, "early", 2)


def test_meters_nest_and_the_patches_go_once_the_last_one_ends(dynamodb: Any) -> None:
    from moto.dynamodb.responses import DynamoHandler

    unpatched = DynamoHandler.__dict__["put_item"]
    with capacity.metered(Clock()) as outer:
        dynamodb.put_item(TableName=TABLE, Item=item("job-1", 500))
        with capacity.metered(Clock()) as inner:
            dynamodb.put_item(TableName=TABLE, Item=item("job-2", 500))
        dynamodb.put_item(TableName=TABLE, Item=item("job-3", 500))
    assert (outer.totals()["wcu"], inner.totals()["wcu"]) == (3.0, 1.0)
    assert DynamoHandler.__dict__["put_item"] is unpatched


# ------------------------------------------------------------------------------------------- metering


def test_metering_snapshots_carry_the_process_meters_totals_and_peaks(dynamodb: Any) -> None:
    meter = capacity.Meter(Clock(50.0))
    capacity.attach(meter)
    metering.meter_dynamodb(meter)
    try:
        dynamodb.put_item(TableName=TABLE, Item=item("job-1", 1536))
        before = metering.snapshot()
        dynamodb.put_item(TableName=TABLE, Item=item("job-1", 2560))
        dynamodb.get_item(TableName=TABLE, Key=key("job-1"))
        after = metering.snapshot()
    finally:
        metering.meter_dynamodb(None)
        capacity.detach(meter)
    assert after["dynamodb_capacity"] == {
        "totals": {"rcu": 0.5, "wcu": 5.0},
        "peaks": {
            "rcu": {"units": 0.5, "table": TABLE, "partition": "job-1", "second": 50},
            "wcu": {"units": 5.0, "table": TABLE, "partition": "job-1", "second": 50},
        },
    }
    # Totals subtract; a peak, like the most at once, is the one since the last reset.
    assert metering.difference(after, before)["dynamodb_capacity"] == {
        "totals": {"rcu": 0.5, "wcu": 3.0},
        "peaks": after["dynamodb_capacity"]["peaks"],
    }
    assert metering.snapshot()["dynamodb_capacity"] == {
        "totals": {"rcu": 0.0, "wcu": 0.0},
        "peaks": {"rcu": None, "wcu": None},
    }


def test_the_local_cloud_meters_its_dynamodb_for_its_lifetime() -> None:
    from moto.dynamodb.responses import DynamoHandler

    unpatched = DynamoHandler.__dict__["put_item"]
    with LocalCloud(serve_api=False, seed=False, ttl_interval=None) as cloud:
        cloud.capacity.clock = Clock(10.0)
        before = metering.snapshot()
        cloud.client("dynamodb").put_item(TableName=cloud.table_name, Item=item("job-1", 1536))
        counted = metering.difference(metering.snapshot(), before)["dynamodb_capacity"]
        assert counted["totals"]["wcu"] >= 2.0
        assert cloud.capacity.by_partition()[(cloud.table_name, "job-1")] == wcu(2.0)
    assert DynamoHandler.__dict__["put_item"] is unpatched
    assert metering.snapshot()["dynamodb_capacity"]["totals"] == {"rcu": 0.0, "wcu": 0.0}
