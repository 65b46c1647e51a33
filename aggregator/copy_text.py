"""Archive rows in PostgreSQL's COPY text format. No I/O.

COPY loads rows with no JSON document to parse, no statement to plan and no conflict to check per
row: about half of PostgreSQL's CPU per archived event (aggregator/archive.py says when it is used).
A field of the text format may not hold a raw backslash, tab, newline or carriage return; those
are escaped. Almost no event has one, so a batch is first written without escaping and kept when
the text holds exactly the separators its rows put there (a few counts over the whole text, in C);
otherwise it is written again with every field escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from schemas.events import Event, moment_of

KEY_COLUMNS = ("organization_id", "external_subscription_id", "transaction_id", "timestamp")
EVENT_COLUMNS = ("organization_id", "external_subscription_id", "transaction_id", "lago_id", "code", "timestamp",
                 "properties", "precise_total_amount_cents", "received_at")
NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _second_text(epoch_s: int) -> str:
    """A second since the epoch as the start of a timestamptz literal (its year padded to 4 digits);
    `_lines` adds `.micros+00`."""
    moment = moment_of(epoch_s * 1_000_000)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}")


def escape(field: str) -> str:
    return field.translate(_ESCAPES)


def _lines(batch: Sequence[Event], escaped: bool) -> tuple[str, str]:
    keys: list[str] = []
    events: list[str] = []
    dumps = orjson.dumps
    # a batch's events share a few seconds: each is formatted once
    seconds: dict[int, str] = {}
    for event in batch:
        organization, subscription, transaction = (event.organization_id, event.external_subscription_id,
                                                    event.transaction_id)
        lago_id, code, properties = event.lago_id, event.code, dumps(event.properties).decode()
        amount = event.precise_total_amount_cents
        if escaped:
            organization, subscription, transaction, lago_id, code, properties = (
                escape(organization), escape(subscription), escape(transaction), escape(lago_id), escape(code),
                escape(properties))
            amount = None if amount is None else escape(amount)
        second, micros = divmod(event.timestamp_us, 1_000_000)
        prefix = seconds.get(second) or seconds.setdefault(second, _second_text(second))
        moment = f"{prefix}.{micros:06d}+00"
        second, micros = divmod(event.received_at_us, 1_000_000)
        prefix = seconds.get(second) or seconds.setdefault(second, _second_text(second))
        head = f"{organization}\t{subscription}\t{transaction}\t"
        keys.append(f"{head}{moment}\n")
        events.append(f"{head}{lago_id}\t{code}\t{moment}\t{properties}\t{NULL if amount is None else amount}\t"
                      f"{prefix}.{micros:06d}+00\n")
    return "".join(keys), "".join(events)


def _only_separators(text: str, rows: int, columns: int, backslashes: int) -> bool:
    return (text.count("\n") == rows and text.count("\t") == rows * (columns - 1)
            and text.count("\\") == backslashes and "\r" not in text)


def copy_text(batch: Sequence[Event]) -> tuple[str, str]:
    """The batch's `event_keys` rows (KEY_COLUMNS) and `events` rows (EVENT_COLUMNS), as COPY text."""
    keys, events = _lines(batch, escaped=False)
    nulls = [event.precise_total_amount_cents for event in batch].count(None)
    # every field of a key row is also in its event row, so the event rows alone tell
    if _only_separators(events, len(batch), len(EVENT_COLUMNS), nulls):
        return keys, events
    return _lines(batch, escaped=True)
