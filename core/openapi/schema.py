"""Small builders for the JSON Schema (2020-12, as OpenAPI 3.1 uses it) of meterline's documents.

Pure functions returning plain dicts. Two conventions hold everywhere:
- a response object is `closed`: every key it lists is always present and no other key appears, so
  the document says exactly what a response holds (the fuzz test checks each answer against it);
- a request object is `open`: keys it does not list are ignored by the handlers, as Lago does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Schema = dict[str, Any]

NO_NUL = "^[^\\u0000]*$"  # PostgreSQL text cannot hold U+0000: such a string is refused (value_is_invalid)
NO_CONTROL = "^[^\\u0000-\\u001f\\u007f]*$"  # identifiers (external ids, codes) hold no control character
CURRENCY = "^[A-Z]{3}$"


def _described(schema: Schema, description: str | None) -> Schema:
    if description:
        schema["description"] = description
    return schema


def nullable(schema: Schema) -> Schema:
    """The same schema, `null` allowed too (an enum or const then lists null)."""
    copy = dict(schema)
    kind = copy.get("type")
    if isinstance(kind, str):
        copy["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        copy["type"] = [*kind, "null"]
    if "enum" in copy and None not in copy["enum"]:
        copy["enum"] = [*copy["enum"], None]
    if "const" in copy:
        copy["enum"] = [copy.pop("const"), None]
    return copy


def text(description: str | None = None, *, max_length: int | None = None, min_length: int | None = None,
         pattern: str | None = None, fmt: str | None = None, enum: Sequence[str] | None = None) -> Schema:
    schema: Schema = {"type": "string"}
    if min_length is not None:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    if pattern is not None:
        schema["pattern"] = pattern
    if fmt is not None:
        schema["format"] = fmt
    if enum is not None:
        schema["enum"] = list(enum)
    return _described(schema, description)


def input_text(description: str | None = None, *, max_length: int = 255, required: bool = False,
               identifier: bool = False) -> Schema:
    """A text field of a request as `rater.inputs.Input.text` reads it: a string of at most
    `max_length` characters, never U+0000 (an identifier: no control character at all); an empty
    string means not given, so a required one is at least one character long."""
    schema = text(description, max_length=max_length, min_length=1 if required else None,
                  pattern=NO_CONTROL if identifier else NO_NUL)
    return schema if required else nullable(schema)


def integer(description: str | None = None, *, minimum: int | None = None, maximum: int | None = None) -> Schema:
    schema: Schema = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return _described(schema, description)


def number(description: str | None = None) -> Schema:
    return _described({"type": "number"}, description)


def boolean(description: str | None = None) -> Schema:
    return _described({"type": "boolean"}, description)


def const(value: Any, description: str | None = None) -> Schema:
    """A value meterline always answers with (the feature it stands for is not meterline's)."""
    kinds = {bool: "boolean", int: "integer", str: "string", type(None): "null", list: "array", dict: "object"}
    return _described({"type": kinds[type(value)], "const": value}, description)


def moment(description: str | None = None) -> Schema:
    """A timestamp as meterline writes every one: ISO 8601 in UTC with milliseconds."""
    return text(description, fmt="date-time")


def day(description: str | None = None) -> Schema:
    return text(description, fmt="date")


def uuid(description: str | None = None) -> Schema:
    return text(description, fmt="uuid")


def array(items: Schema, description: str | None = None, *, min_items: int | None = None,
          max_items: int | None = None) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if min_items is not None:
        schema["minItems"] = min_items
    if max_items is not None:
        schema["maxItems"] = max_items
    return _described(schema, description)


def empty_list(description: str) -> Schema:
    """A list meterline always answers empty (taxes, filters, ... of features it does not have)."""
    return _described({"type": "array", "maxItems": 0}, description)


def closed(properties: Mapping[str, Schema], description: str | None = None,
           optional: Iterable[str] = ()) -> Schema:
    """A response object: every property present (but `optional` ones), nothing else."""
    left_out = set(optional)
    return _described({"type": "object", "properties": dict(properties),
                       "required": [name for name in properties if name not in left_out],
                       "additionalProperties": False}, description)


def open_object(properties: Mapping[str, Schema], description: str | None = None,
                required: Iterable[str] = ()) -> Schema:
    """A request object: unknown keys are ignored."""
    schema: Schema = {"type": "object", "properties": dict(properties)}
    wanted = list(required)
    if wanted:
        schema["required"] = wanted
    return _described(schema, description)


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def not_supported(description: str, accepted: Sequence[Any] = (None,)) -> Schema:
    """A Lago field meterline does not bill: any value but the `accepted` ones (null, Lago's default)
    is refused with 422 `not_supported`, never stored and ignored. `false`, an empty list and an
    empty object count as not given too."""
    return {"enum": list(accepted), "description": f"Refused with `not_supported`: {description}"}


def wrapped(root: str, schema: Schema, description: str | None = None) -> Schema:
    """Lago wraps every body in a root key: `{"<root>": {...}}`."""
    return _described({"type": "object", "properties": {root: schema}, "required": [root]}, description)


def answer(root: str, schema: Schema) -> Schema:
    """A response body: the object under its root key, nothing else."""
    return closed({root: schema})


def page_of(root: str, item: Schema) -> Schema:
    return closed({root: array(item), "meta": ref("PaginationMeta")})
