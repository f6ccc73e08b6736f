"""Public dataset API: what can be loaded here, loading by name or path, checking options, and
registering datasets. Readers live in lego_core.data.readers; registering a dataset in any format
(`add`, `remove`, `show`) in lego_core.data.registration; the CLI in lego_core.cli.datasets."""
from __future__ import annotations

from pathlib import Path

from lego_core.data import registration, store, sources
from lego_core.data.readers import tables
from lego_core.data.generated import load_augmented
from lego_core.data.schema import Dataset

add, remove, show = registration.add, registration.remove, registration.show

DEFAULT = "ml-100k"


def _entry(source: sources.Source, built_in: bool) -> dict:
    return {"name": source.name, "description": source.description, "kind": source.kind, "built_in": built_in,
            "loadable": source.loadable, "reason": source.reason, **source.declaration()}


def available() -> list[dict]:
    """Datasets that can be loaded here: the built-ins and every registered one, each with its
    declaration (`protocol`, whether `cold_items` applies, the `options` it takes with their types,
    defaults and ranges; `lego_core.data.sources`) and `built_in`; registered ones also with the
    counts stored when they were registered (`summary`) and their `format` (nothing is loaded)."""
    out = [_entry(source, True) for source in sources.builtins()]
    for doc in store.manifests():
        out.append({**_entry(sources.registered(doc["name"], doc), False),
                    "summary": doc.get("summary") if isinstance(doc.get("summary"), dict) else None,
                    "format": (doc.get("source") or {}).get("format") if doc["kind"] == registration.KIND else None})
    return out


def _names() -> list[str]:
    return [d["name"] for d in available()]


def load(name_or_path: str | Path, **options) -> Dataset:
    """A Dataset by name (see `available()`) or from a dataset folder or file path.

    Options: those `available()` declares for it (`negatives` and `seed` for leave-last-out
    datasets, `seed` for impression logs, the parameters of
    `lego_core.data.readers.synthetic.generate` for "synthetic"); `cold_items` (a fraction,
    leave-last-out datasets) makes that share of items unseen in training (`lego_core.data.cold`).
    Processed datasets are cached. Fields generated for this dataset (`python -m lego_core
    augment`) are joined into its items.
    """
    return load_augmented(sources.resolve(name_or_path, _names).load(**options))


def check(name_or_path: str | Path, options: dict) -> None:
    """Refuse an unknown dataset or options it does not take (by its declaration), without loading
    it (DataError). Recipes call this before any run folder or background process exists."""
    sources.resolve(name_or_path, _names).check(options)


def register_tables(name: str, items_file: str | Path, interactions_file: str | Path,
                    mapping: dict | tables.TableMapping | None = None, *, negatives: int = 99, seed: int = 0,
                    description: str = "", overwrite: bool = False) -> Dataset:
    """Validate an items + interactions table pair by loading it fully, then save it as `name`."""
    store.check_name(name)
    mapping = tables.TableMapping.from_dict(mapping)
    items_file, interactions_file = Path(items_file), Path(interactions_file)
    dataset = tables.load_tables(items_file, interactions_file, mapping, name=name, negatives=negatives,
                                 seed=seed, cache=False)
    items_copy, inter_copy = "items" + items_file.suffix.lower(), "interactions" + interactions_file.suffix.lower()
    source = {"items_file": str(items_file), "interactions_file": str(interactions_file), "items_copy": items_copy,
              "interactions_copy": inter_copy, "mapping": mapping.to_dict()}
    return store.register(name, "tables", dataset, {"negatives": negatives, "seed": seed}, source,
                             description or f"tables {items_file.name} + {interactions_file.name}",
                             copies={items_copy: items_file, inter_copy: interactions_file}, overwrite=overwrite)


def register_mind(name: str, folder: str | Path, *, seed: int = 0, description: str = "",
                  overwrite: bool = False) -> Dataset:
    """Validate a MIND folder by reading it fully, then save the processed dataset as `name`: a
    "format" registration (`add` with format "mind"); the folder itself is not copied, other seeds
    re-read it while it exists. Registrations of kind "mind" made before formats still load."""
    return registration.add(folder, store.check_name(name), "mind", description=description,
                            overwrite=overwrite, seed=seed)
