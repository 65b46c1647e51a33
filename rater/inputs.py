"""Reading Lago-style input objects: collect every field's error codes, then fail once with all of them.

`null` means "not given" (official clients send every attribute, unset ones as null). Text never
holds U+0000 (PostgreSQL cannot store it), and identifiers (external ids, codes) hold no control
character at all: a value that would fail later, on a write or on every read after it, is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.http import bad_request, canonical_uuid, validation_error

MANDATORY = "value_is_mandatory"
INVALID = "value_is_invalid"
BAD_FORMAT = "invalid_format"
TAKEN = "value_already_exist"
INT32_MAX = 2**31 - 1  # PostgreSQL integer columns
# A count of days (grace period, trial) a biller adds to dates: past this, the date it computes
# would overflow Python's and PostgreSQL's calendars and stop every billing run, not one request.
MAX_DAYS = 36_500
# An amount in cents (plan fee, minimum): low enough that an invoice's total of many such fees
# stays within PostgreSQL's bigint.
MAX_AMOUNT_CENTS = 10**15
OUT_OF_RANGE = "value_is_out_of_range"
NOT_SUPPORTED = "not_supported"  # a Lago feature meterline does not have; refused rather than ignored
# The moments a subscription can start or end between: no event is older than the Unix epoch, and a year
# short of datetime's end leaves room for the periods a biller computes after them (year 10000 overflows).
EARLIEST_MOMENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_MOMENT = datetime(9999, 1, 1, tzinfo=UTC)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control(text: str) -> bool:
    """Whether a text holds a control character (an identifier may not)."""
    return _CONTROL.search(text) is not None


def _not_given(value: Any) -> bool:
    """`null`, `false` and an empty list or object: what official clients send for a feature left unset."""
    return value is None or value is False or (isinstance(value, list | dict) and not value)


class Input:
    def __init__(self, raw: Any):
        if not isinstance(raw, dict):
            raise bad_request("the root value must be an object")
        self.raw: dict[str, Any] = raw
        self.errors: dict[str, list[str]] = {}

    def given(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def fail(self, name: str, code: str) -> None:
        self.errors.setdefault(name, []).append(code)

    def text(self, name: str, *, required: bool = False, max_length: int = 255,
             identifier: bool = False) -> str | None:
        """A string (anything else is `invalid_format`); an `identifier` has no control character."""
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                self.fail(name, MANDATORY)
            return None
        if not isinstance(value, str):
            self.fail(name, BAD_FORMAT)
            return None
        text = value
        if len(text) > max_length:
            self.fail(name, "value_is_too_long")
            return None
        if "\x00" in text or (identifier and _CONTROL.search(text)):
            self.fail(name, INVALID)
            return None
        return text

    def identifier(self, name: str, *, required: bool = False, max_length: int = 255) -> str | None:
        return self.text(name, required=required, max_length=max_length, identifier=True)

    def uuid(self, name: str, *, required: bool = False) -> str | None:
        """A lago_id (a UUID as PostgreSQL reads one, core.http.canonical_uuid), lowercased."""
        value = self.text(name, required=required, max_length=36)
        if value is None:
            return None
        found = canonical_uuid(value)
        if found is None:
            self.fail(name, INVALID)
        return found

    def given_of(self, *names: str) -> list[str]:
        """Which of these names hold a value (`null`, `false` and an empty list or object do not)."""
        return [name for name in names if not _not_given(self.raw.get(name))]

    def unsupported(self, *names: str) -> None:
        """Refuse Lago features meterline does not have when a value is given (`null`, `false` and an
        empty list or object mean not given, as official clients send them)."""
        for name in self.given_of(*names):
            self.fail(name, NOT_SUPPORTED)

    def choice(self, name: str, options: Iterable[str], *, required: bool = False) -> str | None:
        value = self.text(name, required=required)
        if value is not None and value not in tuple(options):
            self.fail(name, INVALID)
            return None
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail(name, BAD_FORMAT)
            return None
        return value

    def integer(self, name: str, *, required: bool = False, minimum: int | None = 0,
                maximum: int = INT32_MAX) -> int | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                self.fail(name, MANDATORY)
            return None
        if isinstance(value, bool):
            self.fail(name, BAD_FORMAT)
            return None
        try:
            number = int(value) if not isinstance(value, float) or value.is_integer() else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            self.fail(name, BAD_FORMAT)
            return None
        if (minimum is not None and number < minimum) or number > maximum:
            self.fail(name, INVALID)  # past the column's range: a clear 422, never a database error
            return None
        return number

    def percentage(self, name: str, *, required: bool = False, above_zero: bool = False) -> Decimal | None:
        """A percentage up to 100 with at most 5 decimals (from 0, or above 0), as a number or a numeric string
        (Lago's spec types rates as strings, its clients send floats)."""
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                self.fail(name, MANDATORY)
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.fail(name, BAD_FORMAT)
            return None
        try:
            rate = Decimal(str(value).strip())
        except InvalidOperation:
            rate = Decimal("NaN")
        if not rate.is_finite():
            self.fail(name, BAD_FORMAT)
            return None
        lowest_ok = rate > 0 if above_zero else rate >= 0
        if not lowest_ok or rate > 100 or rate != rate.quantize(Decimal("0.00001")):
            self.fail(name, OUT_OF_RANGE)
            return None
        return rate

    def currency(self, name: str, *, required: bool = False) -> str | None:
        value = self.text(name, required=required, max_length=3)
        if value is not None and not (len(value) == 3 and value.isascii() and value.isalpha() and value.isupper()):
            self.fail(name, "value_is_invalid")
            return None
        return value

    def timezone(self, name: str) -> str | None:
        value = self.text(name, max_length=64)
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder: IsADirectoryError
            self.fail(name, "invalid_timezone")
            return None
        return value

    def moment(self, name: str) -> datetime | None:
        value = self.text(name, max_length=64)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            self.fail(name, BAD_FORMAT)
            return None
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        try:  # in UTC, 0001-01-01T00:00:00+01:00 falls before year 1: OverflowError (it was a 500)
            in_range = EARLIEST_MOMENT <= parsed.astimezone(UTC) < LATEST_MOMENT
        except OverflowError:
            in_range = False
        if not in_range:
            self.fail(name, INVALID)
            return None
        return parsed

    def check(self) -> None:
        if self.errors:
            raise validation_error(self.errors)
