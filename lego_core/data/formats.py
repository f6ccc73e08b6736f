"""Dataset formats that `datasets add` (CLI and app) recognises: one `Format` per file layout.

Each reader module declares its formats in a module-level `FORMATS` tuple; `_MODULES` lists the
modules, so adding a format is one reader file plus one name here. `detect` tries every format in
order and returns the first that recognises the path (a file or a folder); `get` looks one up by
name for `--format`.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lego_core.data.schema import PROTOCOLS, Dataset
from lego_core.core.errors import DataError

# reader modules under lego_core.data that declare FORMATS (most specific first: detection order)
_MODULES: tuple[str, ...] = ("mind_variants", "mind", "pens", "ebnerd", "adressa", "movielens",
                             "movielens_variants", "goodreads", "amazon", "recbole_atomic")


@dataclass(frozen=True)
class Format:
    """How to recognise and read one dataset layout into the schema.

    `read(path, name=..., **options)` reads and validates the whole dataset (DataError naming the
    file, line or column and the fix on bad input) and returns it; it takes exactly `options`
    (with the defaults in `defaults`). `detect(path)` is cheap: names and headers only. `scheme`
    is the split protocol its datasets follow (schema.LEAVE_LAST_OUT or IMPRESSIONS): a registered
    dataset's declaration, e.g. whether the cold_items option applies, comes from it.
    """

    name: str  # short id used by --format and stored in the registration ("pens", "ml-1m", ...)
    title: str  # one line for lists ("PENS (news.tsv + train/valid behaviours)")
    layout: str  # what a path in this format looks like (error messages, `datasets show`)
    protocol: str  # implicit-feedback rule and split protocol, in a sentence or two
    detect: Callable[[Path], bool]
    read: Callable[..., Dataset]
    defaults: tuple[tuple[str, object], ...] = (("seed", 0),)  # options read() takes, with defaults
    scheme: str = field(kw_only=True)

    def __post_init__(self):
        if self.scheme not in PROTOCOLS:
            raise ValueError(f"format {self.name!r}: scheme must be one of {PROTOCOLS}, not {self.scheme!r}")

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
    raise no_format_error(path, known)


def no_format_error(path: Path, known: list[Format]) -> DataError:
    """One short line: the files seen at `path` and the layout of the format whose file names they
    share most (not every format's layout: that was 1,779 characters)."""
    folder = path if path.is_dir() else path.parent
    seen = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if folder.is_dir() else []
    if path.is_file():
        seen = [path.name] + [n for n in seen if n != path.name]
    shown = ", ".join(seen[:6]) + (f" and {len(seen) - 6} more" if len(seen) > 6 else "") if seen else "no files"
    stems = {re.sub(r"(\.gz)$", "", n.lower()) for n in seen}

    def shared(fmt: Format) -> int:
        return sum(1 for n in stems if re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", fmt.layout.lower()))

    best = max(known, key=shared, default=None)
    closest = f"closest is {best.name}: {best.layout}" if best is not None and shared(best) else \
        "none of the known formats names these files"
    return DataError(f"{path} is in no known dataset format (it has {shown}); {closest}; choose its format "
                     "(the Format box in the app, --format with `datasets add`; `python -m lego_core datasets "
                     "formats` lists them)")
