"""Declared dataset options: a name, a type, a default and a range, so a source can say what it
takes (the app builds its widgets from this, `check` validates a recipe's options with it) in one
place instead of each caller knowing each dataset's options."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from lego_core.core.errors import DataError
from lego_core.data.io import int_option

TYPES = ("int", "float", "str", "any")


@dataclass(frozen=True)
class Option:
    """One option a dataset source takes. `low`/`high` bound numbers (inclusive); a None default
    on an int option means "derived from the others" (None is then accepted)."""

    name: str
    type: str  # one of TYPES
    default: object
    low: float | None = None
    high: float | None = None
    help: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self, value, what: str):
        """`value` checked (ints as int, floats as float), or DataError naming `what` and the option."""
        if self.type == "int":
            if value is None and self.default is None:
                return None
            low = -2**63 if self.low is None else int(self.low)
            high = 2**63 - 1 if self.high is None else int(self.high)
            return int_option(value, self.name, low, high, what)
        if self.type == "float":
            number = None if isinstance(value, (bool, np.bool_)) else value
            try:
                number = float(number)
            except (TypeError, ValueError):
                number = math.nan
            low = -math.inf if self.low is None else self.low
            high = math.inf if self.high is None else self.high
            if not low <= number <= high:
                raise DataError(f"{what} option {self.name} must be a number in [{low}, {high}], got {value!r}")
            return number
        if self.type == "str" and not isinstance(value, str):
            raise DataError(f"{what} option {self.name} must be a string, got {value!r}")
        return value


def like(name: str, default) -> Option:
    """An option known only by its default value (a registration's stored option of no known spec)."""
    kind = {bool: "any", int: "int", float: "float", str: "str"}.get(type(default), "any")
    return Option(name, kind, default)


def check_all(spec: tuple[Option, ...], options: dict, what: str) -> dict:
    """`options` with every value checked against `spec`; DataError naming unknown options."""
    known = {o.name: o for o in spec}
    unknown = [k for k in options if k not in known]
    if unknown:
        raise DataError(f"{what} takes options {list(known)}, not {unknown}")
    return {k: known[k].check(v, what) for k, v in options.items()}
