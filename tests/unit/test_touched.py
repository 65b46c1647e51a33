"""The messages a batch sends the alerts worker (aggregator/touched.py)."""

from __future__ import annotations

import pytest

from aggregator.touched import TouchedPair, partition_of, read_touched, touched_messages


def pair(subscription: str, period: str = "2026-06") -> TouchedPair:
    return TouchedPair("org", f"ext-{subscription}", subscription, period)


def test_pairs_come_back_from_one_message_per_partition_that_has_any() -> None:
    pairs = [pair(f"sub-{n}") for n in range(40)] + [pair("sub-1", "2026-05")]

    messages = touched_messages(pairs, 4)

    expected = sorted({partition_of(p.organization_id, p.external_id, 4) for p in pairs})
    assert [partition for partition, _ in messages] == expected
    assert len(messages) == 4
    read = [read_touched(value) for _, value in messages]
    assert set().union(*read) == set(pairs)
    for (partition, _), found in zip(messages, read, strict=True):
        assert {partition_of(p.organization_id, p.external_id, 4) for p in found} == {partition}


def test_every_pair_of_an_external_id_goes_to_the_same_partition_every_time() -> None:
    assert partition_of("org", "ext-sub-1", 4) == partition_of("org", "ext-sub-1", 4)
    (only,) = touched_messages([pair("sub-1", "2026-05"), pair("sub-1", "2026-06")], 4)
    assert only[0] == partition_of("org", "ext-sub-1", 4)
    assert read_touched(only[1]) == {pair("sub-1", "2026-05"), pair("sub-1", "2026-06")}


def test_no_pairs_no_message() -> None:
    assert touched_messages([], 4) == []


@pytest.mark.parametrize("value", [b"not json", b'{"a": 1}', b'[["org", "ext", "sub"]]', b"[1]"])
def test_a_message_that_is_not_a_list_of_pairs_is_refused(value: bytes) -> None:
    with pytest.raises(ValueError, match="not a usage.touched message"):
        read_touched(value)
