"""lego_core.data.datasets: available(), load(), register_*(), the processed cache and the CLI table."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lego_core.cli import datasets as cli_datasets
from lego_core.data import datasets
from lego_core.core.errors import DataError
from test_data_mind import write_mind
from test_data_tables import CLICKS, ITEMS, MAPPING, write

ROOT = Path(__file__).resolve().parent.parent


def names():
    return [d["name"] for d in datasets.available()]


def test_available_lists_builtins():
    entries = {d["name"]: d for d in datasets.available()}
    assert entries["ml-100k"]["loadable"] and entries["ml-100k"]["kind"] == "movielens"
    assert entries["synthetic"]["loadable"]
    assert all(set(d) == {"name", "description", "kind", "built_in", "loadable", "reason", "protocol", "cold_items",
                          "options"} for d in entries.values())


def test_unknown_name_lists_choices():
    with pytest.raises(DataError, match=r"unknown dataset 'nope': use one of \['ml-100k', 'synthetic'\]"):
        datasets.load("nope")


def test_register_tables_then_load_by_name(tmp_path):
    items_path, clicks_path = write(tmp_path)
    d = datasets.register_tables("shop", items_path, clicks_path, MAPPING, negatives=3, description="my shop")
    folder = tmp_path / "lego-cache" / "datasets" / "shop"
    assert {p.name for p in folder.iterdir()} == {"arrays", "cold.npy", "items.parquet", "meta.json", "dataset.json",
                                                  "sources"}
    assert "shop" in names()
    entry = next(e for e in datasets.available() if e["name"] == "shop")
    assert entry["kind"] == "tables" and entry["description"] == "my shop" and entry["loadable"]
    items_path.unlink()  # the registered copy no longer needs the upload
    loaded = datasets.load("shop")
    assert loaded.name == "shop" and loaded.info["cache"] == "hit"
    assert loaded.items.equals(d.items) and loaded.users.tolist() == d.users.tolist()
    assert np.array_equal(loaded.splits["test"].items, d.splits["test"].items)
    assert loaded.text_fields == ["name", "about"] and loaded.category_field == "kind"
    other = datasets.load("shop", seed=9)  # rebuilt from the stored source copies
    assert np.all(other.splits["test"].sizes == 4)
    assert not np.array_equal(other.splits["test"].items, d.splits["test"].items)
    with pytest.raises(DataError, match="takes options"):
        datasets.load("shop", n_items=3)
    with pytest.raises(DataError, match="already registered"):
        datasets.register_tables("shop", *write(tmp_path), MAPPING)
    again = datasets.register_tables("shop", *write(tmp_path), MAPPING, negatives=5, overwrite=True)
    assert np.all(datasets.load("shop").splits["test"].sizes == 6) and again.name == "shop"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith((".tmp", ".old"))]


def test_invalid_registration_writes_nothing(tmp_path):
    clicks = CLICKS.copy()
    clicks["when"] = clicks["when"].astype(str)
    clicks.loc[3, "when"] = "later"
    with pytest.raises(DataError, match="non-numeric timestamp"):
        datasets.register_tables("bad", *write(tmp_path, clicks=clicks), MAPPING)
    root = tmp_path / "lego-cache" / "datasets"
    assert not root.exists() or not [p for p in root.iterdir() if p.name != ".processed"]
    assert "bad" not in names()
    for bad_name in ("ml-100k", "../x", "", "a b"):
        with pytest.raises(DataError, match="not allowed"):
            datasets.register_tables(bad_name, *write(tmp_path), MAPPING)


def test_register_mind_and_load_by_name(tmp_path):
    root = write_mind(tmp_path / "mind")
    d = datasets.register_mind("mind-small", root, seed=2)
    loaded = datasets.load("mind-small")
    assert loaded.name == "mind-small" and loaded.summary() == d.summary()
    assert loaded.summary()["train_impressions"] == 3
    assert loaded.info["fingerprint"] == d.info["fingerprint"]
    assert datasets.load("mind-small", seed=3).info["seed"] == 3
    with pytest.raises(DataError, match="not a MIND folder"):
        datasets.register_mind("other", tmp_path)
    assert "other" not in names()


def test_processed_cache_hit_and_invalidation(tmp_path):
    items_path, clicks_path = write(tmp_path)
    from lego_core.data.readers.tables import load_tables

    assert load_tables(items_path, clicks_path, MAPPING).info["cache"] == "miss"
    hit = load_tables(items_path, clicks_path, MAPPING)
    assert hit.info["cache"] == "hit" and hit.num_items == 12
    ITEMS.assign(name=ITEMS["name"].str.upper()).to_csv(items_path, index=False)
    os.utime(items_path, ns=(1, 1))  # a changed file (size/mtime) is a new key
    changed = load_tables(items_path, clicks_path, MAPPING)
    assert changed.info["cache"] == "miss" and changed.items.loc[0, "name"] == "PRODUCT 0"
    assert changed.info["fingerprint"] != hit.info["fingerprint"]
    entries = list((tmp_path / "lego-cache" / "datasets" / ".processed").iterdir())
    assert len(entries) == 2 and all((e / "meta.json").is_file() for e in entries)


def test_main_datasets_prints_counts(capsys, tmp_path):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli_datasets.add_datasets_command(sub)
    args = parser.parse_args(["datasets"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:7] == ["name", "items", "users", "clicks", "train", "valid", "test"]
    ml = next(line for line in out if line.startswith("ml-100k"))
    assert ml.split()[1:7] == ["1,682", "943", "100,000", "97,171", "943", "943"]
    assert any(line.startswith("synthetic") for line in out)
    args = parser.parse_args(["datasets", str(write_mind(tmp_path / "m"))])
    args.func(args)
    assert capsys.readouterr().out.splitlines()[2].split()[1:4] == ["7", "4", "5"]


def test_cli_subcommand_lists_movielens(tmp_path):
    env = {**os.environ, "LEGO_CACHE_DIR": str(tmp_path / "cli-cache")}
    done = subprocess.run([sys.executable, "-m", "lego_core", "datasets"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert any(line.split()[:3] == ["ml-100k", "1,682", "943"] for line in done.stdout.splitlines())


def test_reader_notes_reach_the_app_whatever_another_thread_does_to_warnings():
    """Regression (a flaky AppTest under load): the app collected the readers' notes with
    `warnings.catch_warnings`, whose state is process-wide; the UMAP worker thread entering and
    leaving its own block swapped it, and "dropped N repeated clicks" went missing. Notes now also
    travel by their own per-thread channel."""
    import threading
    import warnings

    from lego_core.data import io

    with io.collecting_notes() as notes:
        entered, leave = threading.Event(), threading.Event()

        def other():  # another thread silences warnings and restores them while the reader runs
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                entered.set()
                leave.wait(5)

        thread = threading.Thread(target=other)
        thread.start()
        entered.wait(5)
        io.warn("items.csv: dropped 3 repeated (user, item)\n clicks")
        leave.set()
        thread.join()
    assert notes == ["items.csv: dropped 3 repeated (user, item) clicks"]
    io.warn("outside: not collected")
    assert len(notes) == 1
