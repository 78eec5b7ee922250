"""Validates JSON request bodies against the extracted Graph v1.0 schema (v1.0-types.json)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Violation:
    """One thing a request body got wrong, at a JSON path like `event.attendees[0].type`."""

    severity: Severity
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


_DATE_TIME_OFFSET = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$"
)
_LOCAL_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?$")


class Validator:
    """Walks a JSON value against a type: base types, enums, collections, nullability, more.

    CSDL marks `event` and `message` open types, but the live Outlook backend rejects
    unknown properties with 400 RequestBodyRead, so `strict_open_types` (the default)
    treats them as errors like the backend does.
    """

    def __init__(
        self,
        schema: dict[str, Any],
        windows_zones: dict[str, str],
        strict_open_types: bool = True,
    ) -> None:
        self.types: dict[str, Any] = schema["types"]
        self.enums: dict[str, Any] = schema["enums"]
        self.actions: dict[str, Any] = schema["actions"]
        self.read_only: dict[str, Any] = schema["readOnly"]
        self.required: dict[str, Any] = schema["required"]
        self.windows_zones = windows_zones
        self.strict_open_types = strict_open_types

    def is_time_zone(self, name: str) -> bool:
        """Graph accepts Windows names ("GMT Standard Time") and IANA ones ("Europe/London")."""
        if name in self.windows_zones or name == "UTC":
            return True
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return False
        return True

    def entity(self, type_name: str, value: Any) -> list[Violation]:
        """A POST/PATCH body for an entity: read-only members are refused at the top level."""
        out: list[Violation] = []
        self._value(type_name, False, True, value, type_name, out)
        if isinstance(value, dict):
            read_only = self.read_only.get(type_name, {})
            for key in value:
                rule = read_only.get(_canonical(read_only, key))
                if rule:
                    out.append(
                        Violation(
                            rule["severity"], f"{type_name}.{key}", f"read-only: {rule['note']}"
                        )
                    )
        return out

    def action(self, name: str, value: Any) -> list[Violation]:
        """The JSON parameters of a bound action such as `user.sendMail`."""
        out: list[Violation] = []
        if not isinstance(value, dict):
            return [Violation("error", name, "expected a JSON object")]
        params = self.actions[name]["parameters"]
        for key, item in value.items():
            canonical = _canonical(params, key)
            if canonical is None:
                out.append(Violation("error", f"{name}.{key}", "unknown parameter"))
                continue
            spec = params[canonical]
            self._value(
                spec["type"], spec["collection"], spec["nullable"], item, f"{name}.{key}", out
            )
            if spec["type"] in self.read_only and isinstance(item, dict):
                for member in item:
                    rule = self.read_only[spec["type"]].get(member)
                    if rule:
                        out.append(
                            Violation(rule["severity"], f"{name}.{key}.{member}", "read-only")
                        )
        for canonical, spec in params.items():
            if not spec["nullable"] and _canonical(value, canonical) is None:
                out.append(Violation("error", f"{name}.{canonical}", "required parameter missing"))
        return out

    # --- walking ---------------------------------------------------------------------

    def _value(
        self,
        type_name: str,
        collection: bool,
        nullable: bool,
        value: Any,
        path: str,
        out: list[Violation],
    ) -> None:
        if collection:
            if value is None:
                return  # a null collection: nullable applies to the items
            if not isinstance(value, list):
                out.append(Violation("error", path, f"expected a JSON array of {type_name}"))
                return
            for index, item in enumerate(value):
                self._value(type_name, False, nullable, item, f"{path}[{index}]", out)
            return
        if value is None:
            if not nullable:
                out.append(Violation("error", path, "must not be null"))
            return
        if type_name.startswith("Edm."):
            problem = _primitive(type_name, value)
            if problem:
                out.append(Violation("error", path, problem))
        elif type_name in self.enums:
            self._enum(type_name, value, path, out)
        elif type_name in self.types:
            self._object(type_name, value, path, out)
        else:
            out.append(Violation("warning", path, f"type {type_name} not in the extract"))

    def _enum(self, type_name: str, value: Any, path: str, out: list[Violation]) -> None:
        enum = self.enums[type_name]
        if not isinstance(value, str):
            out.append(Violation("error", path, f"expected a {type_name} member name"))
            return
        parts = [p.strip() for p in value.split(",")] if enum["isFlags"] else [value]
        for part in parts:
            canonical = _canonical(dict.fromkeys(enum["members"]), part)
            if canonical is None:
                out.append(
                    Violation("error", path, f"{part!r} is not one of {', '.join(enum['members'])}")
                )
            elif canonical != part:
                out.append(Violation("warning", path, f"non-canonical casing of {canonical!r}"))

    def properties(self, type_name: str) -> dict[str, dict[str, Any]]:
        props: dict[str, dict[str, Any]] = {}
        name: str | None = type_name
        while name:
            spec = self.types[name]
            for key, prop in spec["properties"].items():
                props.setdefault(key, prop)
            for key, nav in spec["navigationProperties"].items():
                props.setdefault(key, {**nav, "nullable": True, "navigation": True})
            name = spec["baseType"]
        return props

    def _required(self, type_name: str) -> dict[str, str]:
        required: dict[str, str] = {}
        name: str | None = type_name
        while name:
            required.update(self.required.get(name, {}))
            name = self.types[name]["baseType"]
        return required

    def _object(self, type_name: str, value: Any, path: str, out: list[Violation]) -> None:
        if not isinstance(value, dict):
            out.append(Violation("error", path, f"expected a JSON object ({type_name})"))
            return
        odata_type = value.get("@odata.type")
        if isinstance(odata_type, str):
            derived = odata_type.removeprefix("#").removeprefix("microsoft.graph.")
            if derived != type_name and derived not in self._derived(type_name):
                out.append(Violation("error", path, f"{odata_type} is not a {type_name}"))
                return
            type_name = derived
        if self.types[type_name]["abstract"]:
            out.append(Violation("error", path, f"{type_name} is abstract: give @odata.type"))
        props = self.properties(type_name)
        for key, item in value.items():
            if key.startswith("@") or "@odata." in key:
                continue  # instance annotations
            canonical = _canonical(props, key)
            where = f"{path}.{key}"
            if canonical is None:
                open_type = self.types[type_name]["openType"]
                severity: Severity = (
                    "warning" if open_type and not self.strict_open_types else "error"
                )
                out.append(
                    Violation(
                        severity, where, f"the property {key!r} does not exist on type {type_name}"
                    )
                )
                continue
            if canonical != key:
                out.append(Violation("warning", where, f"non-canonical casing of {canonical!r}"))
            prop = props[canonical]
            if prop.get("navigation") and not prop.get("deepInsert"):
                out.append(Violation("error", where, "navigation property cannot be set inline"))
                continue
            self._value(prop["type"], prop["collection"], prop["nullable"], item, where, out)
        for key, reason in self._required(type_name).items():
            if _canonical(value, key) is None:
                out.append(Violation("error", f"{path}.{key}", f"required ({reason})"))
        if type_name == "dateTimeTimeZone":
            self._date_time_zone(value, path, out)

    def _derived(self, type_name: str) -> set[str]:
        found: set[str] = set()
        stack = list(self.types[type_name]["derivedTypes"])
        while stack:
            name = stack.pop()
            if name in self.types and name not in found:
                found.add(name)
                stack.extend(self.types[name]["derivedTypes"])
        return found

    def _date_time_zone(self, value: dict[str, Any], path: str, out: list[Violation]) -> None:
        text, zone = value.get("dateTime"), value.get("timeZone")
        if isinstance(text, str) and not _LOCAL_DATE_TIME.match(text):
            out.append(Violation("error", f"{path}.dateTime", f"not a date and time: {text!r}"))
        if isinstance(zone, str) and not self.is_time_zone(zone):
            out.append(Violation("error", f"{path}.timeZone", f"unknown time zone {zone!r}"))


def _canonical(names: Any, key: str) -> str | None:
    """The schema's spelling of `key`: Outlook matches property names case-insensitively."""
    if key in names:
        return key
    lowered = key.lower()
    return next((name for name in names if name.lower() == lowered), None)


def _primitive(type_name: str, value: Any) -> str | None:
    if type_name == "Edm.String":
        return None if isinstance(value, str) else "expected a string"
    if type_name == "Edm.Boolean":
        return None if isinstance(value, bool) else "expected true or false"
    if type_name == "Edm.Int32":
        if isinstance(value, bool) or not isinstance(value, int):
            return "expected an integer"
        return None if -(2**31) <= value < 2**31 else "out of Int32 range"
    if type_name == "Edm.Double":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "expected a number"
    if type_name == "Edm.DateTimeOffset":
        if not isinstance(value, str) or not _DATE_TIME_OFFSET.match(value):
            return "expected an ISO 8601 date-time with offset"
        return None
    if type_name == "Edm.Date":
        try:
            date.fromisoformat(value)
        except (TypeError, ValueError):
            return "expected a date YYYY-MM-DD"
        return None
    if type_name == "Edm.Binary":
        try:
            base64.b64decode(value, validate=True)
        except (TypeError, ValueError, binascii.Error):
            return "expected base64"
        return None
    return None if isinstance(value, str | int | float | bool) else f"expected {type_name}"


def parse_local(value: dict[str, Any], zones: dict[str, str]) -> datetime:
    """A validated dateTimeTimeZone as an aware datetime (Windows or IANA zone)."""
    head, dot, fraction = str(value["dateTime"]).partition(".")
    moment = datetime.fromisoformat(head + (dot + fraction[:6] if dot else ""))
    zone = str(value.get("timeZone") or "UTC")
    return moment.replace(tzinfo=ZoneInfo(zones.get(zone, zone)))
