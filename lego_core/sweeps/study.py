"""A sweep as an Optuna study: where it is stored, its sampler and pruner, and how a trial becomes a
recipe.

A sweep is one study. By default it lives in its own SQLite file `cache/sweeps/<sweep id>.db`
(embedded, nothing to start); any database URL Optuna supports (`postgresql://...`,
`mysql+pymysql://...`) lets workers on several machines share it. The study keeps the validated
spec (user attribute `spec`) and its workers' sessions (`worker:<host>:<pid>:<ticks>`), so a
worker anywhere needs only the sweep id and the storage URL.

One trial is one run: a configuration (the three bricks and the parameters that apply to them)
with one seed. Its user attributes hold the configuration key, the seed, the run id and the host
the run lives on, and, once it ended, the run's metrics.
"""
from __future__ import annotations

import itertools
import json
import math
import re
import secrets
import time
from pathlib import Path
from typing import Any

from lego_core.evaluation import metrics as lego_metrics
from lego_core.core.paths import cache_dir
from lego_core.bricks.recipe import Recipe
from lego_core.core.errors import LegoError, one_line
from lego_core.sweeps.spec import Dimension, SweepError, SweepSpec

MAX_CHECKED = 2000  # configurations check_space builds (a few ms each)
SPEC_ATTR = "spec"
WORKER_PREFIX = "worker:"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the worker logs what matters itself
    return optuna


# ---- storage --------------------------------------------------------------------------------
def sweeps_dir() -> Path:
    return cache_dir("sweeps")


def check_id(sweep_id: str) -> str:
    if not isinstance(sweep_id, str) or not _ID.fullmatch(sweep_id):
        raise SweepError(f"sweep id {sweep_id!r} is not valid: letters, digits, '-', '_' and '.' (list sweeps "
                         "with `python -m lego_core sweep status`)")
    return sweep_id


def storage_url(sweep_id: str, storage: str | None = None) -> str:
    """`storage` when given (any database URL Optuna supports), else this sweep's SQLite file."""
    if storage:
        return storage
    return f"sqlite:///{sweeps_dir() / (check_id(sweep_id) + '.db')}"


def _storage(url: str):
    optuna = _optuna()
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # noqa: BLE001 - a bad URL or an unreachable database, in one line
        raise SweepError(f"cannot open the sweep storage {_shown(url)}: {str(exc).splitlines()[0][:200]}") from None


def _shown(url: str) -> str:
    """A storage URL without its password."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def remember_storage(sweep_id: str, storage: str | None) -> None:
    """Note a sweep kept in another database (so this machine's Leaderboard lists it)."""
    if not storage:
        return
    from lego_core.core.fileio import atomic_write_json

    known = remembered_storages()
    if known.get(sweep_id) != storage:
        known[sweep_id] = storage
        atomic_write_json(sweeps_dir() / "storages.json", known)


def remembered_storages() -> dict[str, str]:
    try:
        data = json.loads((sweeps_dir() / "storages.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def list_sweeps() -> list[tuple[str, str | None]]:
    """(sweep id, storage URL or None for its local SQLite file), newest local files first."""
    local = sorted(sweeps_dir().glob("*.db"), key=lambda p: p.stat().st_mtime, reverse=True)
    found = [(p.stem, None) for p in local if _ID.fullmatch(p.stem)]
    found += [(sweep_id, url) for sweep_id, url in remembered_storages().items()
              if sweep_id not in {s for s, _ in found}]
    return found


def new_id(spec: SweepSpec) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", spec.name.lower()).strip("-")[:30] or "sweep"
    return f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def create(spec: Any, storage: str | None = None, sweep_id: str | None = None) -> str:
    """Validate `spec`, create its study (nothing runs yet) and return the sweep id."""
    loaded = SweepSpec.load(spec)
    check_space(loaded)
    sweep_id = check_id(sweep_id) if sweep_id else new_id(loaded)
    optuna = _optuna()
    url = storage_url(sweep_id, storage)
    try:
        study = optuna.create_study(storage=_storage(url), study_name=sweep_id, direction=direction(loaded))
    except optuna.exceptions.DuplicatedStudyError:
        raise SweepError(f"sweep {sweep_id} already exists; resume it with `python -m lego_core sweep resume "
                         f"{sweep_id}` or choose another id") from None
    study.set_user_attr(SPEC_ATTR, loaded.model_dump(mode="json"))
    study.set_user_attr("created", time.time())
    remember_storage(sweep_id, storage)
    return sweep_id


def _existing_url(sweep_id: str, storage: str | None) -> str:
    url = storage_url(check_id(sweep_id), storage or remembered_storages().get(sweep_id))
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise SweepError(f"no sweep {sweep_id} here (no {url.removeprefix('sqlite:///')}); list sweeps with "
                         "`python -m lego_core sweep status`, or give --storage")
    return url


def load(sweep_id: str, storage: str | None = None, sampler: Any = None, pruner: Any = None):
    """(Optuna study, spec) of an existing sweep; SweepError when there is none. `sampler` and
    `pruner` are attached to the study (what a worker asks and tells)."""
    optuna = _optuna()
    url = _existing_url(sweep_id, storage)
    try:
        study = optuna.load_study(study_name=sweep_id, storage=_storage(url), sampler=sampler, pruner=pruner)
    except KeyError:
        raise SweepError(f"no sweep {sweep_id} in {_shown(url)}; check the id and --storage") from None
    data = study.user_attrs.get(SPEC_ATTR)
    if not isinstance(data, dict):
        raise SweepError(f"study {sweep_id} in {_shown(url)} holds no sweep spec; it was not made by a sweep")
    return study, SweepSpec.load(data)


def delete(sweep_id: str, storage: str | None = None) -> None:
    """Remove a sweep's study (its runs stay: delete them on the Training page)."""
    load(sweep_id, storage)  # a missing sweep is refused in one line
    _optuna().delete_study(study_name=sweep_id, storage=_storage(_existing_url(sweep_id, storage)))
    path = sweeps_dir() / f"{sweep_id}.db"
    if not storage and path.is_file():
        path.unlink()


# ---- sampler and pruner -----------------------------------------------------------------------
def direction(spec: SweepSpec) -> str:
    return "maximize" if lego_metrics.higher_is_better(spec.metric) else "minimize"


def sampler(spec: SweepSpec, session: int = 0):
    """The spec's sampler; `session` (how many workers started before) shifts a fixed seed so a
    resumed sweep does not draw the same points again. A grid asks no sampler: the worker enqueues
    its points (`grid_points`) with their parameters, so the random sampler is never consulted."""
    optuna = _optuna()
    seed = None if spec.sampler_seed is None else spec.sampler_seed + session
    if spec.sampler in ("grid", "random"):
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, spec.budget.trials // 4)))


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """A grid's distinct configurations in the order its trials take them: sorted (every worker
    agrees), shuffled by the sampler seed when the spec gives one."""
    import random

    points = sorted(configurations(spec) or [], key=config_key)
    if spec.sampler_seed is not None:
        random.Random(spec.sampler_seed).shuffle(points)
    return points


def pruner(spec: SweepSpec):
    """The spec's pruner, fed with each epoch's validation metric (step = epoch, from 1)."""
    optuna = _optuna()
    p = spec.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.min_epochs)
    if p.name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_epochs, reduction_factor=p.reduction_factor)
    return optuna.pruners.NopPruner()


def open_for_work(sweep_id: str, storage: str | None, session: int):
    """The study with the spec's sampler and pruner attached (what a worker asks and tells)."""
    _, spec = load(sweep_id, storage)
    return load(sweep_id, storage, sampler=sampler(spec, session), pruner=pruner(spec))


# ---- trials and configurations ---------------------------------------------------------------
def suggest(trial: Any, spec: SweepSpec) -> dict[str, Any]:
    """The configuration of an Optuna trial: the bricks, then the parameters that apply to them
    (a trial enqueued with fixed parameters gets those)."""
    config: dict[str, Any] = {}
    bricks: dict[str, str] = {}
    for dim in spec.dimensions():
        if not dim.applies(bricks):
            continue
        config[dim.name] = _suggest_one(trial, dim)
        if dim.name in ("content", "behavior", "predictor"):
            bricks[dim.name] = config[dim.name]
    return config


def _suggest_one(trial: Any, dim: Dimension) -> Any:
    if dim.kind == "categorical":
        return trial.suggest_categorical(dim.name, list(dim.values))
    if dim.kind == "int":
        return trial.suggest_int(dim.name, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
    return trial.suggest_float(dim.name, float(dim.low), float(dim.high), step=dim.step, log=dim.log)


def config_key(config: dict[str, Any]) -> str:
    """A configuration as one stable string (equal configurations, equal keys)."""
    return json.dumps(config, sort_keys=True, default=str)


def recipe_for(spec: SweepSpec, config: dict[str, Any], seed: int, name: str) -> Recipe:
    """The recipe a trial runs: the base recipe with the configuration's bricks (a brick other than
    the base's starts from its defaults), its parameters, the seed and the sweep's metric."""
    base = Recipe.load(spec.base)
    data = base.model_dump(mode="json")
    overrides: dict[str, Any] = {"name": name, "training.seed": int(seed), "training.metric": spec.metric}
    for kind in ("content", "behavior", "predictor"):
        brick = config[kind]
        params = dict(data[kind]["params"]) if data[kind]["name"] == brick else {}
        params.update({key.split(".", 2)[2]: value for key, value in config.items()
                       if key.startswith(f"{kind}.{brick}.")})
        overrides[kind] = {"name": brick, "params": params}
    overrides.update({key: value for key, value in config.items() if key.startswith("training.")})
    return base.with_overrides(overrides)


def configurations(spec: SweepSpec, limit: int = 100000) -> list[dict[str, Any]] | None:
    """Every distinct configuration whose bricks fit together (None when the space is continuous or
    larger than `limit`): a grid's points without duplicates."""
    from lego_core.bricks.catalog import compatible

    dims = spec.dimensions()
    if spec.sampler != "grid" and any(d.kind == "float" and not d.step for d in dims):
        return None
    axes = [list(d.values) if spec.sampler == "grid" or d.kind == "categorical" else _range_values(d)
            for d in dims]
    if math.prod(len(a) for a in axes) > limit:
        return None
    seen: dict[str, dict] = {}
    for point in itertools.product(*axes):
        values = dict(zip((d.name for d in dims), point))
        bricks = {k: values[k] for k in ("content", "behavior", "predictor")}
        if compatible(*bricks.values()) is not None:
            continue
        config = {d.name: values[d.name] for d in dims if d.applies(bricks)}
        seen.setdefault(config_key(config), config)
    return list(seen.values())


def check_space(spec: SweepSpec) -> None:
    """Refuse a space with a configuration that cannot run, naming it (SweepError), before any
    trial exists: every configuration of a finite space (up to MAX_CHECKED), else every combination
    of the categorical values and the ranges' ends. The bricks are built as
    `Recipe.validate` builds them, which catches e.g. attention heads that do not divide training.dim."""
    from lego_core.bricks.catalog import compatible

    space = configurations(spec, limit=MAX_CHECKED)
    if space is None:
        dims = spec.dimensions()
        axes = [list(d.values) if d.kind == "categorical" else sorted({d.low, d.high}) for d in dims]
        space = []
        for point in itertools.islice(itertools.product(*axes), MAX_CHECKED):
            values = dict(zip((d.name for d in dims), point))
            bricks = {k: values[k] for k in ("content", "behavior", "predictor")}
            if compatible(*bricks.values()) is None:
                space.append({d.name: _typed(d, values[d.name]) for d in dims if d.applies(bricks)})
    for config in space:
        try:
            recipe_for(spec, config, spec.seed_list[0], spec.name).validate()
        except LegoError as exc:
            shown = ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("content", "behavior", "predictor"))
            raise SweepError(f"sweep spec: the configuration {config['content']} + {config['behavior']} + "
                             f"{config['predictor']}" + (f" with {shown}" if shown else "") + f" cannot run: "
                             f"{one_line(exc)}; change or remove that value") from None


def _typed(dim: Dimension, value: Any) -> Any:
    return int(value) if dim.kind == "int" else value


def _range_values(dim: Dimension) -> list:
    step = dim.step or 1
    count = int(round((dim.high - dim.low) / step)) + 1
    return [dim.low + i * step for i in range(min(count, 100001))]


def plan(spec: SweepSpec) -> dict[str, Any]:
    """How many runs the sweep will start: {"configurations", "seeds", "trials", "space"} where
    `space` is the number of distinct valid configurations (None: unbounded)."""
    space = configurations(spec)
    seeds = len(spec.seed_list)
    count = spec.budget.trials // seeds
    if space is not None:
        count = min(count, len(space))
    return {"configurations": count, "seeds": seeds, "trials": count * seeds,
            "space": None if space is None else len(space)}
