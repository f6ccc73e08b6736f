"""Every dataset source is one kind of thing: a `Source` declares its options (types, defaults,
ranges), its split protocol and so whether `cold_items` applies, and how to read it.

The built-ins (`ml-100k`, `synthetic`), every registered dataset (whatever its format) and a path
(a MIND or GroupLens folder, or any file or folder a format detects) all resolve to a Source, so
`datasets.load`, `datasets.check`, `datasets.available`, the app's sidebar and the Datasets page
read one declaration instead of each keeping its own list of dataset kinds. A registered dataset
in a format takes its protocol from that format (`Format.scheme`); other registrations from the
protocol recorded when they were written.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lego_core.core.errors import DataError
from lego_core.data import formats, registration, store
from lego_core.data.cold import MAX_FRACTION, check_fraction, not_applicable, with_cold_items
from lego_core.data.leave_last_out import MAX_NEGATIVES
from lego_core.data.options import Option, like
from lego_core.data.readers import mind, movielens, synthetic, tables
from lego_core.data.schema import IMPRESSIONS, LEAVE_LAST_OUT, PROTOCOLS, Dataset

SEED = Option("seed", "int", 0, 0, 2**63 - 1, "seed of the split and of the sampled negatives")
NEGATIVES = Option("negatives", "int", 99, 0, MAX_NEGATIVES, "sampled unseen items per valid/test impression")
COLD_ITEMS = Option("cold_items", "float", 0.0, 0.0, MAX_FRACTION, "share of items no training impression, "
                    "history or negative shows (leave-last-out datasets)")
MIND_ROOT = Option("mind", "str", "", help="xMIND: the MIND root whose behaviours it borrows")
KNOWN_OPTIONS = {o.name: o for o in (SEED, NEGATIVES, MIND_ROOT)}


@dataclass(frozen=True)
class Source:
    """A dataset that can be loaded: what it takes and how it is split. `read(**options)` returns
    the dataset as its files define it; `check_values(options)` adds checks across options."""

    name: str
    description: str
    protocol: str  # schema.LEAVE_LAST_OUT or schema.IMPRESSIONS
    options: tuple[Option, ...]  # what `read` takes (cold_items is added for leave-last-out sources)
    read: Callable[..., Dataset]
    kind: str = "path"  # where it comes from: "movielens", "synthetic", a registration's kind, "path"
    label: str = ""  # how messages name it ("ml-100k", "a MIND folder"); default "dataset '<name>'"
    check_values: Callable[[dict], object] | None = None
    loadable: bool = True
    reason: str = ""

    @property
    def cold_items(self) -> bool:
        """Whether the `cold_items` option applies: only a leave-last-out split can hide items."""
        return self.protocol == LEAVE_LAST_OUT

    def spec(self) -> tuple[Option, ...]:
        return self.options + ((COLD_ITEMS,) if self.cold_items else ())

    def declaration(self) -> dict:
        return {"protocol": self.protocol, "cold_items": self.cold_items,
                "options": [o.to_dict() for o in self.spec()]}

    def check(self, options: dict) -> None:
        """DataError (one line) for an option this source does not take or a value out of range."""
        what = self.label or f"dataset {self.name!r}"
        options = dict(options)
        if "cold_items" in options and check_fraction(options.pop("cold_items"), what) > 0 and not self.cold_items:
            raise not_applicable(self.name)
        known = {o.name: o for o in self.options}
        unknown = [k for k in options if k not in known]
        if unknown:
            raise DataError(f"{what} takes options {[o.name for o in self.spec()]}, not {unknown}")
        checked = {k: known[k].check(v, what) for k, v in options.items()}
        if self.check_values is not None:
            self.check_values(checked)

    def load(self, **options) -> Dataset:
        """The dataset with these options, its `cold` mask set (`lego_core.data.cold`)."""
        self.check(options)
        fraction = options.pop("cold_items", 0.0)
        return with_cold_items(self.read(**options), fraction)


def option_like(name: str, default) -> Option:
    """The declaration of option `name` with this default (a known option's range, else its type)."""
    known = KNOWN_OPTIONS.get(name)
    return dataclasses.replace(known, default=default) if known else like(name, default)


def builtins() -> list[Source]:
    folder = movielens.packaged_ml100k_folder()
    return [Source("ml-100k", "MovieLens-100k (1,682 movies, 943 users), leave-last-out", LEAVE_LAST_OUT,
                   (NEGATIVES, SEED), movielens.load_packaged_ml100k, kind="movielens", label="ml-100k",
                   loadable=folder is not None,
                   reason="" if folder else "install the data with `pip install --no-deps recbole==1.2.1`"),
            Source("synthetic", "generated topics with a planted signal (any size)", IMPRESSIONS, synthetic.OPTIONS,
                   synthetic.generate, kind="synthetic", label="synthetic", check_values=synthetic.check_options)]


def _recorded_protocol(name: str, doc: dict) -> str:
    """A registration's protocol: its format's, else the one recorded in its manifest or meta.json."""
    source = doc.get("source") if isinstance(doc.get("source"), dict) else {}
    if doc.get("kind") == registration.KIND:
        fmt = next((f for f in formats.all_formats() if f.name == source.get("format")), None)
        if fmt is not None:
            return fmt.scheme
    recorded = doc.get("protocol")
    if recorded is None:  # registrations written before the manifest recorded it
        try:
            recorded = json.loads((store.folder_of(name) / "meta.json").read_text())["info"].get("protocol")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            recorded = None
    return recorded if recorded in PROTOCOLS else IMPRESSIONS


def registered(name: str, doc: dict) -> Source:
    """The Source of registered dataset `name` (its manifest `doc`): it takes the options it was
    registered with (their stored values are the defaults)."""
    stored = doc.get("options") if isinstance(doc.get("options"), dict) else {}
    return Source(name, str(doc.get("description") or f"registered {doc.get('kind')}"), _recorded_protocol(name, doc),
                  tuple(option_like(k, v) for k, v in stored.items()),
                  lambda **options: store.load(name, options, rebuild), kind=str(doc.get("kind")),
                  loadable=doc.get("loadable", True), reason=doc.get("reason", ""))


def format_source(fmt: formats.Format, path: Path) -> Source:
    """A path a format detects, read in that format (named after the path)."""
    return Source(str(path), fmt.title, fmt.scheme, tuple(option_like(k, v) for k, v in fmt.defaults),
                  lambda **options: fmt.read(path.resolve(), name=path.name, **registration.options_of(fmt, options)),
                  label=f"format {fmt.name!r}")


def of_path(path: Path) -> Source | None:
    """The Source of a dataset folder or file, None when no reader recognises it."""
    if path.is_dir() and mind.is_mind_folder(path):
        return Source(str(path), "a MIND folder", IMPRESSIONS, (SEED,),
                      lambda **options: mind.load_mind(path, **options), label="a MIND folder")
    if path.is_dir() and movielens.is_grouplens_folder(path):
        return Source(str(path), "a GroupLens ml-100k folder", LEAVE_LAST_OUT, (NEGATIVES, SEED),
                      lambda **options: movielens.load_grouplens(path, **options), label="a GroupLens ml-100k folder")
    fmt = next((f for f in formats.all_formats() if f.detect(path)), None) if path.exists() else None
    return format_source(fmt, path) if fmt is not None else None


def resolve(name_or_path: str | Path, names: Callable[[], list[str]]) -> Source:
    """The Source a name (built-in or registered) or a path stands for; DataError listing `names()`
    otherwise."""
    name = str(name_or_path)
    for source in builtins():
        if source.name == name:
            return source
    doc = store.manifest(name)
    if doc is not None:
        return registered(name, doc)
    path = Path(name_or_path).expanduser()
    found = of_path(path)
    if found is not None:
        return found
    if path.is_dir():
        raise DataError(f"{path} is neither a MIND folder (train/ and dev/ with news.tsv and behaviors.tsv) nor "
                        "a GroupLens ml-100k folder (u.data and u.item) nor in another known format; see "
                        "`python -m lego_core datasets formats`")
    raise DataError(f"unknown dataset {name!r}: use one of {names()} or a path to a dataset folder or file "
                    "(see `python -m lego_core datasets formats`)")


def rebuild(folder: Path, doc: dict, options: dict) -> Dataset:
    """A registered dataset re-derived from its sources with other options (`store.load`)."""
    name = folder.name
    if doc["kind"] == registration.KIND:
        return registration.rebuild(folder, doc, options)
    try:
        seed = options["seed"]
        if doc["kind"] == "tables":
            sources, negatives = doc["source"], options["negatives"]
            items_file = folder / "sources" / sources["items_copy"]
            interactions_file = folder / "sources" / sources["interactions_copy"]
            mapping = sources["mapping"]
        elif doc["kind"] == "mind":
            root = Path(doc["source"]["folder"])
    except (KeyError, TypeError) as exc:
        raise DataError(f"{folder / store.MANIFEST} lacks entry {exc}; register dataset {name!r} again") from None
    if doc["kind"] == "tables":
        return tables.load_tables(items_file, interactions_file, mapping, name=name, negatives=negatives, seed=seed)
    if doc["kind"] == "mind":
        if not mind.is_mind_folder(root):
            raise DataError(f"dataset {name!r}: its MIND folder {root} is gone; load it without options or "
                            "register it again")
        return mind.load_mind(root, seed=seed, name=name)
    raise DataError(f"dataset {name!r} has unknown kind {doc['kind']!r}; register it again")
