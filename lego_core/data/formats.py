"""Dataset formats that `datasets add` (CLI and app) recognises: one `Format` per file layout.

Each reader module declares its formats in a module-level `FORMATS` tuple; `_MODULES` lists the
modules, so adding a format is one reader file plus one name here. `detect` tries every format in
order and returns the first that recognises the path (a file or a folder); `get` looks one up by
name for `--format`.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lego_core.data.schema import Dataset
from lego_core.core.errors import DataError

# reader modules under lego_core.data that declare FORMATS (most specific first: detection order)
_MODULES: tuple[str, ...] = ("mind_variants", "mind", "pens", "ebnerd", "adressa", "movielens",
                             "movielens_variants", "goodreads", "amazon", "recbole_atomic")


@dataclass(frozen=True)
class Format:
    """How to recognise and read one dataset layout into the schema.

    `read(path, name=..., **options)` reads and validates the whole dataset (DataError naming the
    file, line or column and the fix on bad input) and returns it; it takes exactly `options`
    (with the defaults in `defaults`). `detect(path)` is cheap: names and headers only.
    """

    name: str  # short id used by --format and stored in the registration ("pens", "ml-1m", ...)
    title: str  # one line for lists ("PENS (news.tsv + train/valid behaviours)")
    layout: str  # what a path in this format looks like (error messages, `datasets show`)
    protocol: str  # implicit-feedback rule and split protocol, in a sentence or two
    detect: Callable[[Path], bool]
    read: Callable[..., Dataset]
    defaults: tuple[tuple[str, object], ...] = (("seed", 0),)  # options read() takes, with defaults

    @property
    def options(self) -> dict:
        return dict(self.defaults)


def all_formats() -> list[Format]:
    """Every known format, in detection order."""
    out: list[Format] = []
    for module in _MODULES:
        out.extend(importlib.import_module(f"lego_core.data.readers.{module}").FORMATS)
    return out


def get(name: str) -> Format:
    """The format called `name` (DataError listing the known ones otherwise)."""
    known = all_formats()
    for fmt in known:
        if fmt.name == name:
            return fmt
    raise DataError(f"unknown format {name!r}: use one of {[f.name for f in known]}")


def detect(path: Path) -> Format:
    """The first format that recognises `path`; DataError listing what each expects otherwise."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist: give a dataset file or folder")
    known = all_formats()
    for fmt in known:
        if fmt.detect(path):
            return fmt
    layouts = "; ".join(f"{f.name}: {f.layout}" for f in known)
    raise DataError(f"{path} is in no known dataset format; pass --format, or lay it out as one of: {layouts}")
