"""Progressive billing thresholds of plans (`usage_thresholds`) and of subscriptions (their
`plan_overrides.usage_thresholds`, or `usage_thresholds` as Lago's newer API takes them): reading them
from a request and storing them.

A list given is the owner's new list (an empty one removes them all: a subscription's plan's apply
again). Lago's codes: `missing_amount_cents`, `duplicated_values` (an amount twice with the same
`recurring`), `multiple_recurring_thresholds`, keyed by the list; each threshold's fields are keyed by its
index (`usage_thresholds.0.amount_cents`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.tables import usage_thresholds
from rater.api.common import new_id
from rater.inputs import BAD_FORMAT, INVALID, MAX_AMOUNT_CENTS, Input

MAX_USAGE_THRESHOLDS = 100  # per plan or subscription: each one is compared with every usage change
# Lago's plan overrides besides usage_thresholds: a per-subscription plan, which meterline does not bill
PLAN_OVERRIDES = ("amount_cents", "amount_currency", "description", "name", "invoice_display_name", "trial_period",
                  "tax_codes", "minimum_commitment", "charges", "fixed_charges", "metadata")


def read_usage_thresholds(raw: Any, name: str, errors: dict[str, list[str]]) -> list[dict[str, Any]] | None:
    """The thresholds given under `name` (None when not given), each `{amount_cents, threshold_display_name,
    recurring}`; what is wrong goes to `errors`."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        errors.setdefault(name, []).append(BAD_FORMAT)
        return None
    if len(raw) > MAX_USAGE_THRESHOLDS:
        errors.setdefault(name, []).append("too_many_thresholds")
        return None
    found: list[dict[str, Any]] = []
    list_errors: list[str] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            errors.setdefault(f"{name}.{index}", []).append(BAD_FORMAT)
            continue
        data = Input(item)
        if data.raw.get("amount_cents") is None and "missing_amount_cents" not in list_errors:
            list_errors.append("missing_amount_cents")
        values = {"amount_cents": data.integer("amount_cents", minimum=1, maximum=MAX_AMOUNT_CENTS),
                  "threshold_display_name": data.text("threshold_display_name"),
                  "recurring": bool(data.boolean("recurring"))}
        for field, codes in data.errors.items():
            errors.setdefault(f"{name}.{index}.{field}", []).extend(codes)
        if not data.errors and values["amount_cents"] is not None:
            found.append(values)
    keys = [(t["amount_cents"], t["recurring"]) for t in found]
    if len(set(keys)) != len(keys):
        list_errors.append("duplicated_values")
    if sum(t["recurring"] for t in found) > 1:
        list_errors.append("multiple_recurring_thresholds")
    if list_errors:
        errors.setdefault(name, []).extend(list_errors)
    return found


def subscription_thresholds(data: Input) -> list[dict[str, Any]] | None:
    """A subscription's own thresholds when given: `plan_overrides.usage_thresholds` or `usage_thresholds`
    (not both); any other plan override is refused (`not_supported`)."""
    overrides = data.raw.get("plan_overrides")
    nested: list[dict[str, Any]] | None = None
    if isinstance(overrides, dict):
        given = Input(overrides)
        given.unsupported(*PLAN_OVERRIDES)
        for field, codes in given.errors.items():
            data.errors.setdefault(f"plan_overrides.{field}", []).extend(codes)
        nested = read_usage_thresholds(overrides.get("usage_thresholds"), "plan_overrides.usage_thresholds",
                                       data.errors)
    elif data.given_of("plan_overrides"):
        data.fail("plan_overrides", BAD_FORMAT)
    top = read_usage_thresholds(data.raw.get("usage_thresholds"), "usage_thresholds", data.errors)
    if nested is not None and top is not None:
        data.fail("usage_thresholds", INVALID)  # two lists for one subscription: which one is meant?
    return nested if nested is not None else top


async def replace_usage_thresholds(conn: AsyncConnection, organization_id: str, wanted: list[dict[str, Any]], *,
                                   plan_id: str | None = None, subscription_id: str | None = None) -> None:
    """The thresholds of a plan or of a subscription become `wanted`. One unchanged (same amount, recurring
    flag and display name) keeps its row; the others are marked deleted (a progressive crossing may name
    them: its invoice and its webhook show the threshold as it was), and new ones added."""
    owner = usage_thresholds.c.plan_id == plan_id if plan_id is not None else \
        usage_thresholds.c.subscription_id == subscription_id
    existing = (await conn.execute(select(usage_thresholds).where(owner, usage_thresholds.c.deleted_at.is_(None))
                                   )).all()
    kept: set[str] = set()
    new: list[dict[str, Any]] = []
    for threshold in wanted:
        same = next((row for row in existing if row.id not in kept and (
            row.amount_cents, row.recurring, row.threshold_display_name) == (
            threshold["amount_cents"], threshold["recurring"], threshold["threshold_display_name"])), None)
        if same is not None:
            kept.add(same.id)
        else:
            new.append(threshold)
    gone = [row.id for row in existing if row.id not in kept]
    if gone:  # kept, marked deleted: the alerts worker may still name them in a crossing (its catalog lags)
        await conn.execute(update(usage_thresholds).where(usage_thresholds.c.id.in_(gone))
                           .values(deleted_at=datetime.now(UTC)))
    if new:
        await conn.execute(usage_thresholds.insert(), [
            {"id": new_id(), "organization_id": organization_id, "plan_id": plan_id,
             "subscription_id": subscription_id, **threshold} for threshold in new])
