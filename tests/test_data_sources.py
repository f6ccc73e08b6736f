"""lego_core.data.sources: every dataset (built-in, registered in any format, a path) declares its
options, its split protocol and whether cold_items applies; available(), check() and load() read it."""
import inspect

import pytest

from lego_core.core.errors import DataError
from lego_core.data import datasets, sources
from lego_core.data.readers import synthetic
from test_data_mind import write_mind
from test_data_review_formats import write_ml1m


def entry(name: str) -> dict:
    return next(d for d in datasets.available() if d["name"] == name)


def option(declared: dict, name: str) -> dict:
    return next(o for o in declared["options"] if o["name"] == name)


def test_builtins_declare_protocol_cold_items_and_options():
    ml, syn = entry("ml-100k"), entry("synthetic")
    assert (ml["protocol"], ml["cold_items"], ml["built_in"]) == ("leave-last-out", True, True)
    assert [o["name"] for o in ml["options"]] == ["negatives", "seed", "cold_items"]
    assert option(ml, "negatives") == {"name": "negatives", "type": "int", "default": 99, "low": 0, "high": 10_000,
                                       "help": option(ml, "negatives")["help"]}
    assert option(ml, "cold_items")["type"] == "float" and option(ml, "cold_items")["high"] == 0.9
    assert (syn["protocol"], syn["cold_items"]) == ("impressions", False)
    assert "cold_items" not in [o["name"] for o in syn["options"]]
    assert option(syn, "n_items")["low"] == 2 and option(syn, "n_items")["default"] == 2000


def test_registered_datasets_declare_what_their_format_says(tmp_path):
    datasets.add(write_ml1m(tmp_path / "ml-1m"), name="one-m", negatives=2)
    datasets.add(write_mind(tmp_path / "m"), name="news")
    one_m, news = entry("one-m"), entry("news")
    assert (one_m["format"], one_m["protocol"], one_m["cold_items"], one_m["built_in"]) == \
        ("ml-1m", "leave-last-out", True, False)
    assert option(one_m, "negatives")["default"] == 2 and option(one_m, "seed")["high"] == 2**63 - 1
    assert [o["name"] for o in one_m["options"]] == ["negatives", "seed", "cold_items"]
    assert (news["format"], news["protocol"], news["cold_items"]) == ("mind", "impressions", False)
    assert [o["name"] for o in news["options"]] == ["seed"]


def test_cold_items_is_checked_by_the_declaration(tmp_path):
    with pytest.raises(DataError, match="option cold_items applies to leave-last-out datasets only") as refused:
        datasets.check("synthetic", {"cold_items": 0.1})
    assert "\n" not in str(refused.value)
    datasets.check("synthetic", {"cold_items": 0})  # none asked: nothing to refuse
    datasets.add(write_ml1m(tmp_path / "ml-1m"), name="one-m")
    datasets.check("one-m", {"cold_items": 0.1, "negatives": 3})
    with pytest.raises(DataError, match=r"dataset 'one-m' option negatives must be <= 10,000"):
        datasets.check("one-m", {"negatives": 10**6})
    with pytest.raises(DataError, match=r"takes options \['negatives', 'seed', 'cold_items'\], not \['n_items'\]"):
        datasets.check("one-m", {"n_items": 3})
    loaded = datasets.load("one-m", cold_items=0.5, negatives=1)
    assert loaded.info["cold_items"] == 0.5 and loaded.cold.sum() >= 2


def test_a_path_is_a_source_too(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    source = sources.resolve(folder, lambda: [])
    assert (source.protocol, source.cold_items) == ("leave-last-out", True)
    datasets.check(str(folder), {"cold_items": 0.2, "negatives": 1})
    mind_source = sources.resolve(write_mind(tmp_path / "m"), lambda: [])
    assert (mind_source.protocol, [o.name for o in mind_source.spec()]) == ("impressions", ["seed"])
    with pytest.raises(DataError, match="cold_items applies to leave-last-out"):
        datasets.check(str(tmp_path / "m"), {"cold_items": 0.1})


def test_synthetic_declares_exactly_what_generate_takes():
    defaults = {k: p.default for k, p in inspect.signature(synthetic.generate).parameters.items()}
    assert {o.name: o.default for o in synthetic.OPTIONS} == defaults
