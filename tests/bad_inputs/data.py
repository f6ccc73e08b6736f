"""Bad inputs for datasets and every data cache: MIND folders, items/interactions tables, dataset
options, registered datasets, and corrupt processed datasets, token tables, LM layer caches, the
UMAP store and generated-field sidecars/stores.

Reader cases expect a one-line DataError naming the file/field and keep the sources unchanged.
Cache cases build a real cache entry in `arrange`, damage it (truncated, empty, garbage, missing,
wrong shape), and expect the next load to say so in one warning line and rebuild (`raises=None`;
`check` compares with a fresh build). Registered datasets are user data: a damaged one is never
rebuilt or removed, loading it is a DataError saying to register it again, and listings go on.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from tests.bad_inputs import Case, cache_root, cli

# ---- fixtures ---------------------------------------------------------------------------------
NEWS = [["N1", "sports", "football", "Team wins", "A long match.", "https://x/1", "[]", "[]"],
        ["N2", "music", "pop", "New album out", "", "https://x/2", "[]", "[]"],
        ["N3", "sports", "tennis", "Final tonight", "Who wins?", "https://x/3", "[]", "[]"],
        ["N4", "finance", "markets", "Stocks fall", "Markets down.", "https://x/4", "[]", "[]"]]
BEHAVIORS_TRAIN = [["1", "U1", "11/15/2019 8:55:16 AM", "N1 N2", "N3-1 N4-0"],
                   ["2", "U2", "11/15/2019 9:00:00 PM", "", "N1-0 N3-1 N2-0"]]
BEHAVIORS_DEV = [["7", "U3", "11/16/2019 8:00:00 AM", "N4 N1", "N2-1 N3-0"],
                 ["8", "U1", "11/16/2019 9:00:00 AM", "N1 N2", "N4-1 N1-0"]]
ITEMS = pd.DataFrame({"sku": [f"P{i}" for i in range(8)], "name": [f"product {i}" for i in range(8)],
                      "kind": ["toys", "books"] * 4})
CLICKS = pd.DataFrame({"who": ["a"] * 4 + ["b"] * 4, "what": [f"P{i}" for i in range(8)],
                       "when": [10, 20, 30, 40, 5, 6, 7, 8]})
MAPPING = {"item_id": "sku", "text": ["name"], "category": "kind", "user": "who", "item": "what",
           "timestamp": "when"}
SMALL = dict(n_items=30, n_users=10, n_topics=3, history_len=4, n_impressions=20, impression_size=4, seed=1)


def _tsv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join("\t".join(r) + "\n" for r in rows).encode(encoding))
    return path


def _mind(tmp: Path, **override) -> dict:
    """A MIND folder (train/ and dev/); `override` maps 'train/news.tsv' etc. to rows, bytes or None."""
    root = tmp / "mind"
    files = {"train/news.tsv": NEWS, "train/behaviors.tsv": BEHAVIORS_TRAIN, "dev/news.tsv": NEWS,
             "dev/behaviors.tsv": BEHAVIORS_DEV}
    files.update(override)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            continue
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            _tsv(path, content)
    return {"root": root}


def _keep_root(ctx: dict) -> list[Path]:
    return [ctx["root"]]


def _tables(tmp: Path, items: pd.DataFrame = ITEMS, clicks: pd.DataFrame = CLICKS, fmt: str = "csv") -> dict:
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    paths = src / f"items.{fmt}", src / f"clicks.{fmt}"
    for frame, path in zip((items, clicks), paths):
        frame.to_parquet(path, index=False) if fmt == "parquet" else frame.to_csv(path, index=False)
    return {"root": src, "items": paths[0], "clicks": paths[1], "mapping": dict(MAPPING)}


def _load_tables(ctx: dict, **options):
    from lego_core.data.readers import tables

    return tables.load_tables(ctx["items"], ctx["clicks"], ctx["mapping"], **options)


def _frame(base: pd.DataFrame, **columns) -> pd.DataFrame:
    out = base.copy()
    for name, values in columns.items():
        out[name] = values
    return out


def _set(base: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    out = base.copy().astype({column: object})
    out.at[row, column] = value
    return out


def _damage(path: Path, how: str) -> None:
    """Corrupt a cache file: truncated, empty, garbage or missing."""
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"\x00garbage, not a cache file\xff" * 7)
    elif how == "missing":
        path.unlink()
    else:
        raise ValueError(how)


def _info_is(key: str, value) -> Callable[[dict, object], None]:
    def check(ctx: dict, dataset) -> None:
        assert dataset.info[key] == value, dataset.info
    return check


def _message_has(*parts: str) -> Callable[[dict, object], None]:
    def check(ctx: dict, exc) -> None:
        for part in parts:
            assert part.lower() in str(exc).lower(), (part, str(exc))
    return check


# ---- MIND folders -----------------------------------------------------------------------------
def _load_path(ctx: dict, **options):
    from lego_core.data import datasets

    return datasets.load(ctx["root"], **options)


def _mind_case(id: str, names: str, raises=None, options: dict | None = None, **override) -> Case:
    from lego_core.core.errors import DataError

    return Case(id=id, arrange=lambda tmp: _mind(tmp, **override), act=lambda ctx: _load_path(ctx, **(options or {})),
                raises=raises or DataError, names=names, keep=_keep_root)


def _mind_cases() -> list[Case]:
    bad_utf8 = "".join("\t".join(r) + "\n" for r in NEWS).encode().replace(b"Stocks fall", "Börse fällt".encode("latin-1"))
    return [
        _mind_case("data-mind-missing-news", "news.tsv", **{"dev/news.tsv": None}),
        _mind_case("data-mind-missing-behaviors", "behaviors.tsv", **{"train/behaviors.tsv": None}),
        _mind_case("data-mind-empty-news", "news.tsv", **{"train/news.tsv": b""}),
        _mind_case("data-mind-empty-behaviors", "behaviors.tsv", **{"dev/behaviors.tsv": b""}),
        _mind_case("data-mind-short-news-row", "line 2", **{"train/news.tsv": [NEWS[0], ["N9", "x", "y"]] + NEWS[1:]}),
        _mind_case("data-mind-news-too-few-columns", "tab-separated columns",
                   **{"train/news.tsv": [r[:3] for r in NEWS]}),
        _mind_case("data-mind-short-behaviors-row", "line 2",
                   **{"train/behaviors.tsv": [BEHAVIORS_TRAIN[0], ["2", "U2", "11/15/2019 9:00:00 PM"]]}),
        _mind_case("data-mind-bad-impression-token", "'-1'/'-0'",
                   **{"train/behaviors.tsv": [BEHAVIORS_TRAIN[0], BEHAVIORS_TRAIN[1][:4] + ["N1-0 N3-yes"]]}),
        _mind_case("data-mind-unlabelled-test-folder", "click label",
                   **{"dev/behaviors.tsv": [r[:4] + [r[4].replace("-1", "").replace("-0", "")] for r in BEHAVIORS_DEV]}),
        _mind_case("data-mind-empty-impressions", "impressions (column 5) is empty",
                   **{"dev/behaviors.tsv": [BEHAVIORS_DEV[0], BEHAVIORS_DEV[1][:4] + [" "]]}),
        _mind_case("data-mind-non-utf8-news", "utf-8 (line 4)", **{"train/news.tsv": bad_utf8}),
        _mind_case("data-mind-bad-time", "time (column 3)",
                   **{"train/behaviors.tsv": [BEHAVIORS_TRAIN[0], ["2", "U2", "yesterday", "", "N1-1 N2-0"]]}),
        _mind_case("data-mind-impression-id-not-integer", "impression id (column 1)",
                   **{"dev/behaviors.tsv": [["x7"] + BEHAVIORS_DEV[0][1:], BEHAVIORS_DEV[1]]}),
        _mind_case("data-mind-duplicate-impression-id", "duplicate id",
                   **{"dev/behaviors.tsv": [BEHAVIORS_DEV[0], ["7"] + BEHAVIORS_DEV[1][1:]]}),
        _mind_case("data-mind-duplicate-news-id", "duplicate id 'N1'", **{"dev/news.tsv": NEWS + [NEWS[0]]}),
        _mind_case("data-mind-empty-news-id", "empty news id", **{"train/news.tsv": NEWS + [[" "] + NEWS[0][1:]]}),
        _mind_case("data-mind-nothing-known", "no impression names a known news item",
                   **{"dev/behaviors.tsv": [r[:4] + ["X1-1 X2-0"] for r in BEHAVIORS_DEV]}),
        _mind_case("data-mind-seed-not-a-number", "seed", options={"seed": "abc"}),
        _mind_case("data-mind-seed-negative", "seed", options={"seed": -3}),
        _mind_case("data-mind-unknown-option", "takes options", options={"negatives": 5}),
        Case(id="data-mind-not-a-mind-folder", arrange=_mind_without_dev, act=_load_path, raises=_data_error(),
             names="neither a MIND folder", keep=_keep_root),
        Case(id="data-mind-unknown-candidates-dropped",
             arrange=lambda tmp: _mind(tmp, **{"dev/behaviors.tsv": [BEHAVIORS_DEV[0][:4] + ["N2-1 X9-0"],
                                                                      BEHAVIORS_DEV[1]]}),
             act=_load_path, names="dropped 1 impression candidates", keep=_keep_root,
             check=_info_is("dev_unknown_candidates_dropped", 1)),
        Case(id="data-mind-cli-missing-file", arrange=lambda tmp: _mind(tmp, **{"dev/behaviors.tsv": None}),
             act=lambda ctx: cli("datasets", ctx["root"]), exit=2, names="behaviors.tsv", keep=_keep_root),
    ]


def _mind_without_dev(tmp: Path) -> dict:
    import shutil

    ctx = _mind(tmp)
    shutil.rmtree(ctx["root"] / "dev")
    return ctx


def _data_error():
    from lego_core.core.errors import DataError

    return DataError


# ---- GroupLens ml-100k folders ---------------------------------------------------------------------
def _grouplens(tmp: Path, u_data: str | None = None, u_item: str | None = None) -> dict:
    root = tmp / "ml-100k"
    root.mkdir()
    flags = "|".join(["0"] * 19)
    (root / "u.item").write_text(u_item if u_item is not None else "".join(
        f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|{flags}\n" for i in range(1, 6)), encoding="latin-1")
    (root / "u.data").write_text(u_data if u_data is not None else "".join(
        f"{u}\t{i}\t5\t{100 * u + i}\n" for u in (1, 2) for i in range(1, 6)))
    return {"root": root}


def _grouplens_cases() -> list[Case]:
    flags = "|".join(["0"] * 18)
    return [
        Case(id="data-grouplens-u-data-three-columns",
             arrange=lambda tmp: _grouplens(tmp, u_data="".join(f"1\t{i}\t5\n" for i in range(1, 6))),
             act=_load_path, raises=_data_error(), names="u.data has 3 tab-separated columns", keep=_keep_root),
        Case(id="data-grouplens-bad-genre-flag",
             arrange=lambda tmp: _grouplens(tmp, u_item=f"1|Movie (1995)|01-Jan-1995||http://x|{flags}|x\n"),
             act=_load_path, raises=_data_error(), names="u.item line 1", keep=_keep_root),
        Case(id="data-grouplens-timestamp-1e30",
             arrange=lambda tmp: _grouplens(tmp, u_data="".join(f"1\t{i}\t5\t{'1e30' if i == 3 else i}\n"
                                                                 for i in range(1, 6))),
             act=_load_path, raises=_data_error(), names="u.data: column 'timestamp (column 4)' line 3",
             keep=_keep_root),
        Case(id="data-grouplens-negatives-float", arrange=_grouplens, act=lambda ctx: _load_path(ctx, negatives=2.5),
             raises=_data_error(), names="option negatives", keep=_keep_root),
    ]


# ---- tables -----------------------------------------------------------------------------------
def _table_case(id: str, names: str, items: pd.DataFrame = ITEMS, clicks: pd.DataFrame = CLICKS, fmt: str = "csv",
                mapping: dict | None = None, options: dict | None = None, edit: Callable[[dict], None] | None = None,
                check=None) -> Case:
    def arrange(tmp: Path) -> dict:
        ctx = _tables(tmp, items, clicks, fmt)
        if mapping is not None:
            ctx["mapping"] = mapping
        if edit is not None:
            edit(ctx)
        return ctx

    return Case(id=id, arrange=arrange, act=lambda ctx: _load_tables(ctx, **(options or {})), raises=_data_error(),
                names=names, keep=_keep_root, check=check)


def _write_text(key: str, text: str | bytes) -> Callable[[dict], None]:
    def edit(ctx: dict) -> None:
        ctx[key].write_bytes(text if isinstance(text, bytes) else text.encode())
    return edit


def _rename(key: str, suffix: str) -> Callable[[dict], None]:
    def edit(ctx: dict) -> None:
        ctx[key] = ctx[key].rename(ctx[key].with_suffix(suffix))
    return edit


def _table_cases() -> list[Case]:
    strs = CLICKS.astype({"when": str})
    lists = [[v] for v in ITEMS["sku"]]
    return [
        _table_case("data-tables-missing-timestamp-column", "lacks column(s) ['when']", clicks=CLICKS.drop(columns="when")),
        _table_case("data-tables-mapping-names-missing-text", "lacks column(s) ['nope']",
                    mapping=MAPPING | {"text": ["name", "nope"]}),
        _table_case("data-tables-mapping-unknown-key", "unknown table mapping key(s) ['colour']",
                    mapping=MAPPING | {"colour": "red"}),
        _table_case("data-tables-id-column-missing", "lacks column(s) ['sku']", items=ITEMS.drop(columns="sku")),
        _table_case("data-tables-empty-clicks-file", "clicks.csv is empty", edit=_write_text("clicks", "")),
        _table_case("data-tables-header-only", "clicks.csv", edit=_write_text("clicks", "who,what,when\n")),
        _table_case("data-tables-long-first-row", "clicks.csv line 2",
                    edit=_write_text("clicks", "who,what,when\na,P1,3,9,9\na,P2,4\n")),
        _table_case("data-tables-long-later-row", "line 3",
                    edit=_write_text("clicks", "who,what,when\na,P1,3\na,P2,4,9\n")),
        _table_case("data-tables-duplicate-item-id", "duplicate id 'P3'", items=_set(ITEMS, 5, "sku", "P3")),
        _table_case("data-tables-empty-item-id", "column 'sku' line 3", items=_set(ITEMS, 1, "sku", " ")),
        _table_case("data-tables-empty-user", "column 'who' line 2", clicks=_set(CLICKS, 0, "who", "")),
        _table_case("data-tables-unknown-items-everywhere", "none of the 8 interactions",
                    clicks=_frame(CLICKS, what=["X" + v for v in CLICKS["what"]])),
        _table_case("data-tables-non-numeric-timestamp", "column 'when' line 4", clicks=_set(strs, 2, "when", "soon")),
        _table_case("data-tables-timestamp-1e30", "column 'when' line 3", clicks=_set(strs, 1, "when", "1e30")),
        _table_case("data-tables-timestamp-minus-1e30", "column 'when' line 2", clicks=_set(strs, 0, "when", "-1e30")),
        _table_case("data-tables-timestamp-inf", "column 'when' line 5", clicks=_set(strs, 3, "when", "inf")),
        _table_case("data-tables-parquet-timestamp-1e30", "clicks.parquet: column 'when' line 9",
                    clicks=_set(CLICKS.astype({"when": float}), 7, "when", 1e30).astype({"when": float}), fmt="parquet"),
        _table_case("data-tables-parquet-uint64-timestamp", "column 'when'",
                    clicks=_frame(CLICKS, when=np.full(8, 2**64 - 1, dtype=np.uint64)), fmt="parquet"),
        _table_case("data-tables-boolean-timestamp", "booleans", clicks=_frame(CLICKS, when=[True] * 8), fmt="parquet"),
        _table_case("data-tables-bad-label", "column 'clicked' line 3",
                    clicks=_frame(CLICKS, clicked=["1", "yes"] + ["1"] * 6), mapping=MAPPING | {"label": "clicked"}),
        _table_case("data-tables-all-labels-zero", "every row has 'clicked' = 0",
                    clicks=_frame(CLICKS, clicked=[0] * 8), mapping=MAPPING | {"label": "clicked"}),
        _table_case("data-tables-unsupported-extension", "unsupported file type '.xlsx'", edit=_rename("clicks", ".xlsx")),
        _table_case("data-tables-missing-items-file", "items.csv not found", edit=lambda ctx: ctx["items"].unlink()),
        _table_case("data-tables-non-utf8", "items.csv is not valid utf-8 (line 3)",
                    edit=lambda ctx: ctx["items"].write_bytes(ctx["items"].read_bytes().replace(b"product 1", b"produit \xe9"))),
        _table_case("data-tables-truncated-parquet", "items.parquet is not a readable Parquet file", fmt="parquet",
                    edit=lambda ctx: _damage(ctx["items"], "truncated")),
        _table_case("data-tables-parquet-list-item-ids", "items.parquet: column 'sku' holds lists", fmt="parquet",
                    items=_frame(ITEMS, sku=lists)),
        _table_case("data-tables-parquet-list-clicked-items", "clicks.parquet: column 'what' holds lists", fmt="parquet",
                    clicks=_frame(CLICKS, what=[[v] for v in CLICKS["what"]])),
        _table_case("data-tables-parquet-list-users", "clicks.parquet: column 'who' holds lists", fmt="parquet",
                    clicks=_frame(CLICKS, who=[[v, v] for v in CLICKS["who"]])),
        _table_case("data-tables-parquet-list-timestamps", "clicks.parquet: column 'when' holds lists", fmt="parquet",
                    clicks=_frame(CLICKS, when=[[v] for v in CLICKS["when"]])),
        _table_case("data-tables-item-id-column-reserved", "column 'item_id' is reserved",
                    items=_frame(ITEMS, item_id=ITEMS["sku"])),
        _table_case("data-tables-too-few-clicks", "no user has 3 or more clicks",
                    clicks=_frame(CLICKS, who=[f"u{i}" for i in range(8)])),
        _table_case("data-tables-tsv-non-numeric-timestamp", "clicks.tsv: column 'when' line 3",
                    edit=lambda ctx: (ctx["clicks"].unlink(), ctx.update(clicks=ctx["root"] / "clicks.tsv"),
                                      ctx["clicks"].write_text("who\twhen\twhat\na\t1\tP1\na\tnoon\tP2\n"))),
        _table_case("data-tables-negatives-not-a-number", "option negatives", options={"negatives": "abc"}),
        _table_case("data-tables-negatives-huge", "option negatives", options={"negatives": 1e9}),
        _table_case("data-tables-seed-negative", "option seed", options={"seed": -1}),
        Case(id="data-tables-some-unknown-items-dropped",
             arrange=lambda tmp: _tables(tmp, clicks=pd.concat([CLICKS, pd.DataFrame({"who": ["a"], "what": ["X1"],
                                                                                        "when": [99]})])),
             act=_load_tables, names="dropped 1 interactions naming unknown items", keep=_keep_root,
             check=_info_is("unknown_items_dropped", 1)),
    ]


# ---- dataset options and names ------------------------------------------------------------------
def _load(name, **options):
    from lego_core.data import datasets

    return datasets.load(name, **options)


def _option_case(id: str, names: str, name="synthetic", **options) -> Case:
    return Case(id=id, arrange=lambda tmp: {}, act=lambda ctx: _load(name, **options), raises=_data_error(),
                names=names)


def _register(ctx: dict, name: str, **kw):
    from lego_core.data import datasets

    return datasets.register_tables(name, ctx["items"], ctx["clicks"], MAPPING, negatives=3, **kw)


def _datasets_folder(ctx: dict) -> list[Path]:
    """Sources and every registered dataset (nothing may be written there)."""
    return [ctx["root"], cache_root() / "datasets"]


def _keep_registered(ctx: dict) -> list[Path]:
    """Sources and the registered dataset's folder (loads may add processed caches beside it)."""
    return [ctx["root"], ctx["folder"]]


def _nothing_registered(ctx: dict, exc) -> None:
    folder = cache_root() / "datasets"
    assert not folder.exists() or not [p for p in folder.iterdir() if not p.name.startswith(".")]


def _generate_named_5(ctx: dict):
    from lego_core.data.readers.synthetic import generate

    return generate(name=5)


def _option_cases() -> list[Case]:
    return [
        _option_case("data-synthetic-n-items-string", "n_items", n_items="abc"),
        _option_case("data-synthetic-n-items-1e12", "n_items", n_items=1e12),
        _option_case("data-synthetic-n-items-fraction", "n_items", n_items=2.5),
        _option_case("data-synthetic-n-items-nan", "n_items", n_items=float("nan")),
        _option_case("data-synthetic-n-users-bool", "n_users", n_users=True),
        _option_case("data-synthetic-n-users-huge-int", "n_users", n_users=10**15),
        _option_case("data-synthetic-n-topics-too-small", "n_topics must be >= 2", n_topics=1),
        _option_case("data-synthetic-history-len-list", "history_len", history_len=[3]),
        _option_case("data-synthetic-impression-size-huge", "impression_size", impression_size=10**9),
        _option_case("data-synthetic-too-many-candidates", "impression_size", n_impressions=5_000_000,
                     impression_size=100),
        _option_case("data-synthetic-eval-impressions-string", "n_eval_impressions", n_eval_impressions="many"),
        _option_case("data-synthetic-seed-string", "seed", seed="x"),
        _option_case("data-synthetic-seed-negative", "seed", seed=-5),
        _option_case("data-synthetic-too-many-words", "words_per_topic", n_topics=900, words_per_topic=5000),
        Case(id="data-synthetic-name-not-text", arrange=lambda tmp: {}, raises=_data_error(), names="option name",
             act=_generate_named_5),
        _option_case("data-synthetic-unknown-option", "takes options", colour="red"),
        _option_case("data-ml100k-unknown-option", "takes options", name="ml-100k", n_items=3),
        _option_case("data-ml100k-negatives-string", "negatives", name="ml-100k", negatives="lots"),
        _option_case("data-unknown-dataset-name", "unknown dataset 'nope'", name="nope"),
        _option_case("data-name-with-trailing-newline", "unknown dataset 'shop\\n'", name="shop\n"),
        Case(id="data-cli-unknown-dataset", arrange=lambda tmp: {}, act=lambda ctx: cli("datasets", "nope"), exit=2,
             names="unknown dataset 'nope'"),
        Case(id="data-register-name-trailing-newline", arrange=_tables, act=lambda ctx: _register(ctx, "shop\n"),
             raises=_data_error(), names="dataset name 'shop\\n' is not allowed", keep=_datasets_folder,
             check=_nothing_registered),
        Case(id="data-register-name-with-slash", arrange=_tables, act=lambda ctx: _register(ctx, "../shop"),
             raises=_data_error(), names="dataset name '../shop' is not allowed", keep=_datasets_folder),
        Case(id="data-register-reserved-name", arrange=_tables, act=lambda ctx: _register(ctx, "synthetic"),
             raises=_data_error(), names="dataset name 'synthetic'", keep=_datasets_folder),
        Case(id="data-register-name-taken", arrange=lambda tmp: _registered(tmp),
             act=lambda ctx: _register(ctx, "shop"), raises=_data_error(), names="already registered",
             keep=_keep_registered),
        Case(id="data-registered-unknown-option", arrange=lambda tmp: _registered(tmp),
             act=lambda ctx: _load("shop", n_items=3), raises=_data_error(), names="takes options",
             keep=_keep_registered),
        Case(id="data-augment-field-trailing-newline", arrange=lambda tmp: {"dataset": _small()},
             act=lambda ctx: _augment_module().augment(ctx["dataset"], "desc\n", "Describe {title}"),
             raises=_data_error(), names="field name 'desc\\n'"),
    ]


# ---- registered datasets ------------------------------------------------------------------------
def _registered(tmp: Path, damage: str | None = None, how: str = "truncated") -> dict:
    ctx = _tables(tmp)
    _register(ctx, "shop")
    ctx["folder"] = cache_root() / "datasets" / "shop"
    if damage == "arrays-shape":
        _reshape_arrays(ctx["folder"] / "arrays")
    elif damage is not None:
        _damage(ctx["folder"] / damage, how)
    return ctx


def _registered_case(id: str, damage: str, how: str, names: str) -> Case:
    return Case(id=id, arrange=lambda tmp: _registered(tmp, damage, how), act=lambda ctx: _load("shop"),
                raises=_data_error(), names=names, keep=_keep_registered,
                check=_message_has("dataset 'shop'", "register it again"))


def _entry(name: str) -> dict:
    from lego_core.data import datasets

    return next(e for e in datasets.available() if e["name"] == name)


def _check_listed_unreadable(part: str):
    def check(ctx: dict, entries) -> None:
        shop = next(e for e in entries if e["name"] == "shop")
        assert not shop["loadable"] and "unreadable" in shop["reason"] and part in shop["reason"], shop
        assert next(e for e in entries if e["name"] == "synthetic")["loadable"]
    return check


def _check_cli_lists(part: str):
    def check(ctx: dict, result) -> None:
        row = next(line for line in result.stdout.splitlines() if line.startswith("shop"))
        assert part in row, row
        assert any(line.startswith("synthetic") and "2,000" in line for line in result.stdout.splitlines())
    return check


def _write_manifest(text: str):
    def arrange(tmp: Path) -> dict:
        ctx = _registered(tmp)
        (ctx["folder"] / "dataset.json").write_text(text)
        return ctx
    return arrange


def _available(ctx: dict):
    from lego_core.data import datasets

    return datasets.available()


def _registry_cases() -> list[Case]:
    cases = [_registered_case(f"data-registered-{stem.replace('/', '-')}-{how}", f"{stem}.{ext}", how, f"{stem}.{ext}")
             for stem, ext in (("items", "parquet"), ("arrays/seq_items", "npy"), ("meta", "json"))
             for how in ("truncated", "empty", "garbage", "missing")]
    cases += [
        Case(id="data-registered-arrays-wrong-shape", arrange=lambda tmp: _registered(tmp, "arrays-shape"),
             act=lambda ctx: _load("shop"), raises=_data_error(), names="seq_offsets.npy", keep=_keep_registered,
             check=_message_has("register it again")),
        Case(id="data-registered-listed-unreadable", arrange=lambda tmp: _registered(tmp, "items.parquet"),
             act=_available, keep=_keep_registered, check=_check_listed_unreadable("items.parquet")),
        Case(id="data-registered-missing-meta-listed", arrange=lambda tmp: _registered(tmp, "meta.json", "missing"),
             act=_available, keep=_keep_registered, check=_check_listed_unreadable("meta.json")),
        Case(id="data-registered-garbage-manifest-listed", arrange=_write_manifest("{not json"), act=_available,
             keep=_keep_registered, check=_check_listed_unreadable("dataset.json")),
        Case(id="data-registered-garbage-manifest-load", arrange=_write_manifest("{not json"),
             act=lambda ctx: _load("shop"), raises=_data_error(), names="dataset.json", keep=_keep_registered,
             check=_message_has("register")),
        Case(id="data-registered-manifest-not-an-object", arrange=_write_manifest("[1, 2]"),
             act=lambda ctx: _load("shop"), raises=_data_error(), names="dataset.json", keep=_keep_registered),
        Case(id="data-registered-manifest-empty", arrange=_write_manifest(""), act=_available, keep=_keep_registered,
             check=_check_listed_unreadable("dataset.json")),
        Case(id="data-cli-lists-corrupt-registered", arrange=lambda tmp: _registered(tmp, "items.parquet"),
             act=lambda ctx: cli("datasets"), exit=0, keep=_keep_registered, check=_check_cli_lists("unreadable")),
        Case(id="data-cli-lists-wrong-shape-registered", arrange=lambda tmp: _registered(tmp, "arrays-shape"),
             act=lambda ctx: cli("datasets"), exit=0, keep=_keep_registered, check=_check_cli_lists("seq_offsets.npy")),
        Case(id="data-cli-names-corrupt-registered", arrange=lambda tmp: _registered(tmp, "arrays/seq_items.npy"),
             act=lambda ctx: cli("datasets", "shop"), exit=2, names="seq_items.npy", keep=_keep_registered),
        Case(id="data-registered-source-copy-corrupt", arrange=_corrupt_source_copy,
             act=lambda ctx: _load("shop", seed=5), raises=_data_error(), names="interactions.csv",
             keep=_keep_registered),
        Case(id="data-registered-manifest-lacks-source", arrange=_manifest_without_source,
             act=lambda ctx: _load("shop", seed=5), raises=_data_error(), names="dataset.json lacks entry 'source'",
             keep=_keep_registered),
        Case(id="data-registered-mind-folder-gone", arrange=_registered_mind_gone,
             act=lambda ctx: _load("news", seed=3), raises=_data_error(), names="is gone", keep=_keep_registered),
    ]
    return cases


def _reshape_arrays(folder: Path) -> None:
    """One user short in a stored dataset's arrays/ folder: the offsets no longer match."""
    offsets = np.load(folder / "seq_offsets.npy", allow_pickle=False)
    (folder / "seq_offsets.npy").unlink()  # a new file: a registration may share the old one (hard link)
    np.save(folder / "seq_offsets.npy", offsets[:-1])


def _manifest_without_source(tmp: Path) -> dict:
    ctx = _registered(tmp)
    path = ctx["folder"] / "dataset.json"
    doc = json.loads(path.read_text())
    doc.pop("source")
    path.write_text(json.dumps(doc))
    return ctx


def _corrupt_source_copy(tmp: Path) -> dict:
    ctx = _registered(tmp)
    (ctx["folder"] / "sources" / "interactions.csv").write_text("who,what\n")
    return ctx


def _registered_mind_gone(tmp: Path) -> dict:
    import shutil

    from lego_core.data import datasets

    ctx = _mind(tmp)
    datasets.register_mind("news", ctx["root"])
    shutil.rmtree(ctx["root"])
    return {"root": ctx["root"], "folder": cache_root() / "datasets" / "news"}


# ---- processed-dataset cache ----------------------------------------------------------------------
def _processed(tmp: Path, file: str, how: str) -> dict:
    ctx = _tables(tmp)
    reference = _load_tables(ctx)
    folders = list((cache_root() / "datasets" / ".processed").glob("tables-*"))
    assert len(folders) == 1
    ctx.update(folder=folders[0], reference=reference)
    path = folders[0] / file
    if how == "shape":
        _reshape_arrays(path)
    elif how == "pickled":
        users = np.load(path, allow_pickle=False)
        np.save(path, users.astype(object), allow_pickle=True)  # np.save pickles object arrays
    elif how == "lacks-array":
        path.unlink()
    elif how == "fewer-items":
        pd.read_parquet(path).head(2).to_parquet(path, index=False)
    elif how == "no-id":
        pd.read_parquet(path).drop(columns="item_id").to_parquet(path, index=False)
    elif how == "not-an-object":
        path.write_text("[1, 2, 3]")
    elif how == "old-format":
        meta = json.loads(path.read_text())
        path.write_text(json.dumps(meta | {"format": 0}))
    elif how == "no-splits":
        meta = json.loads(path.read_text())
        meta.pop("splits")
        path.write_text(json.dumps(meta))
    elif how == "folder-is-a-file":
        import shutil

        shutil.rmtree(folders[0])
        folders[0].write_text("not a folder")
    else:
        _damage(path, how)
    return ctx


def _check_rebuilt(ctx: dict, dataset) -> None:
    from lego_core.data.cache import check_dataset
    from lego_core.data.processed import read_dataset

    ref = ctx["reference"]
    assert dataset.info["cache"] == "miss", "a corrupt entry is rebuilt"
    check_dataset(dataset)
    assert dataset.items.equals(ref.items) and dataset.users.tolist() == ref.users.tolist()
    for split in ref.splits:
        assert np.array_equal(dataset.splits[split].items, ref.splits[split].items)
    stored = read_dataset(ctx["folder"])  # the entry is whole again
    assert np.array_equal(stored.seq_items, ref.seq_items)
    assert _load_tables(ctx).info["cache"] == "hit"


def _cache_case(id: str, file: str, how: str, names: str) -> Case:
    return Case(id=id, arrange=lambda tmp: _processed(tmp, file, how), act=_load_tables, names=names,
                keep=_keep_root, check=_check_rebuilt)


def _processed_cases() -> list[Case]:
    cases = [_cache_case(f"data-cache-{stem.replace('/', '-')}-{how}", f"{stem}.{ext}", how, f"{stem}.{ext}")
             for stem, ext in (("arrays/seq_items", "npy"), ("arrays/users", "npy"), ("cold", "npy"),
                               ("items", "parquet"), ("meta", "json"))
             for how in ("truncated", "empty", "garbage", "missing")]
    cases += [
        _cache_case("data-cache-arrays-wrong-shape", "arrays", "shape", "sequence offsets"),
        _cache_case("data-cache-arrays-pickled-object", "arrays/users.npy", "pickled", "pickled objects"),
        _cache_case("data-cache-arrays-lack-one", "arrays/test.labels.npy", "lacks-array", "test.labels"),
        _cache_case("data-cache-items-fewer-rows", "items.parquet", "fewer-items", "out of range"),
        _cache_case("data-cache-items-no-id-column", "items.parquet", "no-id", "item_id"),
        _cache_case("data-cache-meta-not-an-object", "meta.json", "not-an-object", "meta.json"),
        _cache_case("data-cache-meta-old-format", "meta.json", "old-format", "format"),
        _cache_case("data-cache-meta-lacks-splits", "meta.json", "no-splits", "splits"),
        _cache_case("data-cache-entry-is-a-file", "meta.json", "folder-is-a-file", "meta.json"),
    ]
    return cases


# ---- token tables ---------------------------------------------------------------------------------
def _small():
    from lego_core.data.readers.synthetic import generate

    return generate(**SMALL)


def _tokens(ctx: dict):
    from lego_core.data.tokenize import word_tokens

    return word_tokens(ctx["dataset"], max_len=6, glove=False)


def _token_cache(tmp: Path, how: str) -> dict:
    dataset = _small()
    ctx = {"dataset": dataset}
    ctx["reference"] = _tokens(ctx)
    (path,) = list((cache_root() / "tokens").glob("*.npz"))
    ctx["path"] = path
    if how in ("truncated", "empty", "garbage", "missing"):
        _damage(path, how)
    else:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        if how == "shape":
            arrays["tokens"] = arrays["tokens"][:, :3]
        elif how == "no-vocab":
            arrays.pop("vocab")
        elif how == "ids-out-of-vocab":
            arrays["tokens"] = arrays["tokens"] + 10_000
        elif how == "pickled":
            arrays["vocab"] = np.array([["<pad>"], "<unk>"], dtype=object)
        np.savez(path, **arrays)
    return ctx


def _check_tokens(ctx: dict, table) -> None:
    ref = ctx["reference"]
    assert np.array_equal(table.tokens, ref.tokens) and np.array_equal(table.mask, ref.mask)
    assert table.vocab == ref.vocab
    assert np.array_equal(_tokens(ctx).tokens, ref.tokens) and ctx["path"].is_file()


def _token_cases() -> list[Case]:
    return [Case(id=f"data-tokens-{how}", arrange=lambda tmp, how=how: _token_cache(tmp, how), act=_tokens,
                 names=names, check=_check_tokens)
            for how, names in (("truncated", "token cache"), ("empty", "token cache"), ("garbage", ".npz"),
                               ("missing", ""), ("shape", "shape"), ("no-vocab", "vocab"),
                               ("ids-out-of-vocab", "outside the vocabulary"), ("pickled", ".npz"))]


# ---- LM layer cache -------------------------------------------------------------------------------
class _Stack:
    """A stand-in for LayerStack: hidden state = 0.5 * token id + 1 at every width position."""

    hidden_size, num_layers, training = 4, 2, False

    def eval(self):
        self.training = False
        return self

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def embed_tokens(self, ids):
        return ids.float()[..., None].repeat(1, 1, self.hidden_size)

    def run(self, hidden, mask, start, stop=None):
        return hidden * 0.5 + 1


def _layer_inputs() -> tuple[np.ndarray, np.ndarray]:
    ids = np.arange(1, 31, dtype=np.int64).reshape(5, 6)
    mask = np.ones((5, 6), dtype=bool)
    mask[1, 3:] = False
    ids[~mask] = 0
    return ids, mask


def _layer_cache(ctx: dict):
    from lego_core.lm import layer_cache

    ids, mask = _layer_inputs()
    return layer_cache.build_or_load(_Stack(), ids, mask, 1, "k" * 32, batch_size=2)


def _layer_arrange(how: str):
    def arrange(tmp: Path) -> dict:
        _layer_cache({})
        folder = cache_root() / "lm_layers" / ("k" * 32)
        file, _, kind = how.partition(":")
        path = folder / file
        if kind == "shape":
            np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(5, 6, 8)).flush()
        elif kind == "float32":
            np.save(path, np.zeros((5, 6, 4), dtype=np.float32))
        elif kind == "mask-shape":
            np.save(path, np.ones((4, 6), dtype=bool))
        elif kind == "items":
            meta = json.loads(path.read_text())
            path.write_text(json.dumps(meta | {"items": 7}))
        elif kind == "boundary":
            meta = json.loads(path.read_text())
            path.write_text(json.dumps(meta | {"boundary": 3}))
        else:
            _damage(path, kind)
        return {"folder": folder}
    return arrange


def _check_layers(ctx: dict, cache) -> None:
    ids, mask = _layer_inputs()
    assert cache.hidden.shape == (5, 6, 4) and cache.hidden.dtype == np.float16
    assert np.array_equal(cache.mask, mask)
    want = (ids * 0.5 + 1).astype(np.float16)
    got = np.asarray(cache.hidden)[..., 0]
    assert np.array_equal(got[mask], want[mask])
    assert not [p for p in ctx["folder"].parent.iterdir() if p.name.startswith(".tmp")]


def _layer_cases() -> list[Case]:
    kinds = [("hidden.npy:truncated", "hidden.npy"), ("hidden.npy:empty", "hidden.npy"),
             ("hidden.npy:garbage", "hidden.npy"), ("hidden.npy:missing", "hidden.npy"),
             ("hidden.npy:shape", "hidden.npy"), ("hidden.npy:float32", "float16"),
             ("mask.npy:truncated", "mask.npy"), ("mask.npy:missing", "mask.npy"),
             ("mask.npy:mask-shape", "mask.npy"), ("meta.json:garbage", "meta.json"),
             ("meta.json:empty", "meta.json"), ("meta.json:missing", "meta.json"),
             ("meta.json:items", "meta.json"), ("meta.json:boundary", "boundary")]
    return [Case(id=f"data-layer-cache-{how.replace('.npy', '').replace('.json', '').replace(':', '-')}",
                 arrange=_layer_arrange(how), act=_layer_cache, names=names, check=_check_layers)
            for how, names in kinds]


# ---- UMAP store -----------------------------------------------------------------------------------
VECTORS = np.random.default_rng(3).normal(size=(12, 5)).astype(np.float32)
PARAMS = {"n_neighbors": 60}  # more neighbours than points: the instant PCA fallback


def _plain_store():
    import diskcache

    return diskcache.Cache(str(cache_root() / "umap"))


def _umap_arrange(how: str):
    def arrange(tmp: Path) -> dict:
        from lego_core.explore import maps

        key = maps.umap_key("r1", VECTORS, PARAMS)
        folder = cache_root() / "umap"
        if how == "garbage-db":
            folder.mkdir(parents=True)
            (folder / "cache.db").write_bytes(b"not a database at all " * 50)
        elif how == "truncated-db":
            with _plain_store() as store:
                for i in range(200):
                    store.set(f"filler{i}", bytes(3000))
            data = (folder / "cache.db").read_bytes()
            (folder / "cache.db").write_bytes(data[: len(data) // 3])
        else:
            value = {"short": b"\x00" * 10, "long": np.zeros((13, 2), np.float32).tobytes(), "text": "hello",
                     "pickled": None}[how]
            with _plain_store() as store:
                if how == "pickled":
                    store.set(key, np.zeros((12, 2), np.float32))  # diskcache pickles arrays
                else:
                    store.set(key, value)
        return {"folder": folder}
    return arrange


def _umap_then_cached(ctx: dict):
    from lego_core.explore import maps

    first = maps.umap_2d("r1", VECTORS, PARAMS)
    return first, maps.cached_umap("r1", VECTORS, PARAMS)


def _check_umap(ctx: dict, result) -> None:
    from lego_core.explore import maps

    first, again = result
    assert first.shape == (12, 2) and np.isfinite(first).all()
    np.testing.assert_allclose(first, maps.pca_2d(VECTORS), rtol=1e-5, atol=1e-5)
    assert again is not None and np.array_equal(first, again), "the recomputed map is stored again"


def _umap_cases() -> list[Case]:
    out = [Case(id=f"data-umap-value-{how}", arrange=_umap_arrange(how), act=_umap_then_cached, names=names,
                check=_check_umap)
           for how, names in (("short", "expected 96"), ("long", "unreadable"), ("text", "str"), ("pickled", "pickled"))]
    out += [
        Case(id="data-umap-garbage-db", arrange=_umap_arrange("garbage-db"), act=_umap_then_cached,
             names="UMAP cache", check=_check_umap),
        Case(id="data-umap-garbage-db-cached-only", arrange=_umap_arrange("garbage-db"),
             act=lambda ctx: __import__("lego_core.explore.maps", fromlist=["cached_umap"]).cached_umap("r1", VECTORS, PARAMS),
             names="umap", check=lambda ctx, xy: xy is None),
        Case(id="data-umap-truncated-db", arrange=_umap_arrange("truncated-db"), act=_umap_then_cached,
             check=_check_umap),
    ]
    return out


# ---- generated fields (augment) -----------------------------------------------------------------
def _augment_module():
    from lego_core.lm import generation as augment

    return augment


def _sidecars(how: str):
    def arrange(tmp: Path) -> dict:
        from lego_core.data.generated import sidecar_dir

        dataset = _small()
        folder = sidecar_dir(dataset)
        ids = dataset.items["item_id"].astype(str)
        pd.DataFrame({"item_id": ids, "keywords": "kw " + ids}).to_parquet(folder / "keywords.parquet", index=False)
        path = folder / "description.parquet"
        pd.DataFrame({"item_id": ids, "description": "d " + ids}).to_parquet(path, index=False)
        if how == "no-column":
            pd.DataFrame({"item_id": ids}).to_parquet(path, index=False)
        elif how == "csv-inside":
            path.write_text("item_id,description\nS00,x\n")
        else:
            _damage(path, how)
        return {"dataset": dataset, "path": path}
    return arrange


def _check_sidecar(ctx: dict, dataset) -> None:
    assert "description" not in dataset.items.columns and not ctx["path"].exists()
    assert dataset.items["keywords"].iloc[0] == "kw " + dataset.items["item_id"].iloc[0]
    assert dataset.info["augmented"] == ["keywords"]


def _augment_store(how: str):
    def arrange(tmp: Path) -> dict:
        import diskcache

        aug = _augment_module()
        dataset = _small()
        folder = cache_root() / "augment" / "store"
        folder.mkdir(parents=True)
        if how == "garbage-db":
            (folder / "cache.db").write_bytes(b"\x01 definitely not sqlite " * 40)
        else:
            from lego_core.data.text import item_texts

            prompt = item_texts(dataset, template=TEMPLATE)[0]
            with diskcache.Cache(str(folder)) as store:
                store.set(aug._store_key("fake-model", TEMPLATE, prompt, 48, None),
                          ["a", "list"] if how == "pickled" else b"bytes")
        return {"dataset": dataset}
    return arrange


TEMPLATE = "Describe {title}"


class _FakeGenerator:
    calls: list[int] = []

    def __init__(self, model, max_new_tokens, system):
        pass

    def __call__(self, prompts):
        _FakeGenerator.calls.append(len(prompts))
        return [f"about {p.split()[-1]}" for p in prompts]


def _run_augment(ctx: dict):
    aug = _augment_module()
    _FakeGenerator.calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aug, "Generator", _FakeGenerator)
        patch.setattr("lego_core.lm.models.resolve", lambda model: SimpleNamespace(signature=lambda: "fake-model"))
        out = aug.augment(ctx["dataset"], "summary", TEMPLATE, limit=3)
        again = aug.augment(ctx["dataset"], "summary", TEMPLATE, limit=3)
    return out, again


def _check_augment(ctx: dict, result) -> None:
    out, again = result
    words = [t.split()[-1] for t in ctx["dataset"].items["title"].iloc[:3]]
    assert out.items["summary"].iloc[:3].tolist() == [f"about {w}" for w in words]
    assert again.items["summary"].tolist() == out.items["summary"].tolist()
    assert sum(_FakeGenerator.calls) == 3, "regenerated once, then served from the repaired store"


def _augment_cases() -> list[Case]:
    def load_it(ctx):
        from lego_core.data.generated import load_augmented

        return load_augmented(ctx["dataset"])

    out = [Case(id=f"data-augment-sidecar-{how}", arrange=_sidecars(how), act=load_it, names=names,
                check=_check_sidecar)
           for how, names in (("truncated", "description.parquet"), ("empty", "description.parquet"),
                              ("garbage", "description"), ("no-column", "lacks column"),
                              ("csv-inside", "description.parquet"))]
    out += [
        Case(id="data-augment-sidecar-via-datasets-load", arrange=_sidecars("truncated"),
             act=lambda ctx: _load("synthetic", **SMALL), names="augment synthetic --field description",
             check=_check_sidecar),
        Case(id="data-augment-store-garbage-db", arrange=_augment_store("garbage-db"), act=_run_augment,
             names="augment answer store", check=_check_augment),
        Case(id="data-augment-store-pickled-answer", arrange=_augment_store("pickled"), act=_run_augment,
             names="pickled", check=_check_augment),
        Case(id="data-augment-store-bytes-answer", arrange=_augment_store("bytes"), act=_run_augment,
             names="instead of text", check=_check_augment),
    ]
    return out


CASES: list[Case] = (_mind_cases() + _grouplens_cases() + _table_cases() + _option_cases() + _registry_cases() + _processed_cases()
                     + _token_cases() + _layer_cases() + _umap_cases() + _augment_cases())
