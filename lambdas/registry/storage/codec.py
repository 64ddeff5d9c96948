"""DynamoDB attribute values <-> Python values, for the low-level client (no Decimal round trip)."""

from __future__ import annotations

from typing import Any


def encode(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (int, float)):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, (set, frozenset)):
        return {"SS": sorted(value)}
    if isinstance(value, (list, tuple)):
        return {"L": [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: encode(v) for k, v in value.items()}}
    if value is None:
        return {"NULL": True}
    raise TypeError(f"cannot store {type(value).__name__}")


def decode(value: dict[str, Any]) -> Any:
    ((kind, raw),) = value.items()
    if kind == "S" or kind == "BOOL":
        return raw
    if kind == "N":
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    if kind == "B":
        return bytes(raw)
    if kind == "SS":
        return frozenset(raw)
    if kind == "L":
        return [decode(v) for v in raw]
    if kind == "M":
        return {k: decode(v) for k, v in raw.items()}
    if kind == "NULL":
        return None
    raise TypeError(f"unexpected attribute type {kind}")


def item(**attributes: Any) -> dict[str, Any]:
    """An item from keyword attributes; None values are left out."""
    return {k: encode(v) for k, v in attributes.items() if v is not None}


def plain(attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if attributes is None else {k: decode(v) for k, v in attributes.items()}


def values(**named: Any) -> dict[str, Any]:
    """ExpressionAttributeValues from keyword arguments: values(v=1) -> {":v": {"N": "1"}}."""
    return {f":{k}": encode(v) for k, v in named.items()}
