"""numba's compiled code of umap is kept under the cache folder across processes: the app sets
$NUMBA_CACHE_DIR (under `cache_dir("numba")`) before anything imports numba, umap-learn's own
uncached jitted functions get numba's disk cache, and a second process loads instead of compiling.
Each check runs in a fresh Python process, as a new app process would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lego_core.explore import maps

ROOT = Path(__file__).resolve().parent.parent

APP_THEN_UMAP = r'''
import importlib.abc, json, os, sys
at_import = {}
class Watch(importlib.abc.MetaPathFinder):
    """Records $NUMBA_CACHE_DIR when numba and umap are first imported, whoever imports them."""
    def find_spec(self, name, path, target=None):
        if name in ("numba", "umap"):
            at_import.setdefault(name, os.environ.get("NUMBA_CACHE_DIR"))
        return None
sys.meta_path.insert(0, Watch())
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
seen = {"exceptions": [str(e.value) for e in at.exception], "env": os.environ.get("NUMBA_CACHE_DIR")}
from lego_core.explore import maps
maps.import_umap()
import numba.core.config
import umap.layouts, umap.umap_, umap.utils
seen["numba_config"] = numba.core.config.CACHE_DIR
def where(f):
    return getattr(f._cache, "_cache_path", None)
seen["cached"] = {name: where(f) for name, f in [
    ("smooth_knn_dist", umap.umap_.smooth_knn_dist),
    ("compute_membership_strengths", umap.umap_.compute_membership_strengths),
    ("fast_knn_indices", umap.utils.fast_knn_indices),
    ("layout_epoch", umap.layouts._nb_optimize_layout_euclidean_single_epoch)]}
seen["at_import"] = at_import
seen["parallel_twin"] = type(umap.layouts._nb_optimize_layout_euclidean_single_epoch_parallel._cache).__name__
print(json.dumps(seen))
'''

FIT_AND_COUNT = r'''
import json, sys
import numpy as np
from lego_core.explore import maps
from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher
vectors = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
maps.umap_2d(sys.argv[1], vectors)
compiled, loaded = {}, {}
for name, module in list(sys.modules.items()):
    if name.startswith("umap"):
        for attr, obj in vars(module).items():
            if isinstance(obj, Dispatcher) and isinstance(obj._cache, FunctionCache):
                # signatures given as text compile at import, before the cache is switched on (umap's
                # two tiny tau_rand functions): only code compiled on call is counted
                on_call = lambda counts: sum(n for sig, n in counts.items() if not isinstance(sig, str))
                compiled[attr] = on_call(obj._cache_misses)
                loaded[attr] = on_call(obj._cache_hits)
print(json.dumps({"compiled": compiled, "loaded": loaded}))
'''


def _python(code: str, *args: str, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(LEGO_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=str(ROOT), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_app_points_numba_at_the_cache_folder_before_umap_loads(tmp_path):
    cache = tmp_path / "cache"
    seen = _python(APP_THEN_UMAP, str(ROOT / "app.py"), cache=cache)
    assert seen["exceptions"] == []
    folder = str(cache / "numba")
    assert seen["env"] == folder and seen["numba_config"] == folder
    assert seen["at_import"] == {"numba": folder, "umap": folder}  # set before either was imported
    assert (cache / "numba").is_dir()
    for name, path in seen["cached"].items():  # umap-learn's own functions now cache there too
        assert path and path.startswith(folder), (name, path)
    assert seen["parallel_twin"] == "NullCache"  # shares its Python function with the cached serial epoch


def test_warm_up_waits_for_a_filled_cache(tmp_path, monkeypatch):
    """At app start the warm-up only loads cached code: with an empty cache it starts nothing (the
    one compile happens with the first real map)."""
    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setattr(maps, "_WARM", None)
    assert maps.warm_umap() is None and maps._WARM is None
    (tmp_path / "numba" / "umap_0123").mkdir(parents=True)
    (tmp_path / "numba" / "umap_0123" / "umap_.smooth_knn_dist-1.py311.nbi").write_bytes(b"")
    started = []
    monkeypatch.setattr(maps, "_executor", lambda: type("E", (), {"submit": lambda self, f: started.append(f)})())
    maps.warm_umap()
    assert started == [maps._warm_up]


@pytest.mark.slow
def test_a_second_process_loads_umap_instead_of_compiling(tmp_path):
    cache = tmp_path / "cache"
    first = _python(FIT_AND_COUNT, "run-1", cache=cache)
    second = _python(FIT_AND_COUNT, "run-2", cache=cache)
    compiled = {name for name, n in first["compiled"].items() if n}
    assert {"smooth_knn_dist", "compute_membership_strengths", "fast_knn_indices",
            "_nb_optimize_layout_euclidean_single_epoch"} <= compiled
    assert not any(second["compiled"].values()), second["compiled"]
    assert all(second["loaded"][name] for name in compiled - {"clip"}), second["loaded"]  # clip is inlined
