"""Builder: drag bricks (or pick them from select boxes) into the content, behaviour and predictor
slots, set their hyper-parameters from forms the catalog describes, check the recipe, see its size,
download it as YAML and launch training in the background. In Sweep mode the recipe is the base of
a sweep: several bricks per slot, parameter ranges, seeds and a budget, launched as one sweep."""
from __future__ import annotations

import json

import streamlit as st
from streamlit_sortables import sort_items

from lego_core.core import devices
from lego_core.training import epoch_time
from lego_core.explore import frames
from lego_core.explore.builder import QUICK, BuilderState, Widget, field_choices
from lego_core.core.errors import LegoError
from lego_core.bricks import catalog
from lego_core.bricks.catalog import KINDS
from lego_core.bricks.settings import label_of
from lego_core.bricks.recipe import Recipe, presets
from lego_core.explore import sweep_form as form
from lego_core.explore.sweep_form import RangeWidget
from lego_core.sweeps.spec import SweepSpec
from pages import _common as ui

ui.require_navigation()

KIND_LABEL = {"content": "content", "behavior": "behaviour", "predictor": "predictor"}
SLOT_TITLE = {"content": "Content slot", "behavior": "Behaviour slot", "predictor": "Predictor slot"}
CUSTOM = "custom"  # the Preset box's value when the bricks and settings are no preset (None would read as empty)
PALETTE_TITLE = {"content": "Content bricks", "behavior": "Behaviour bricks", "predictor": "Predictors"}

# The component's iframe holds a <style> then the six containers: children 5-7 are the slots.
SORTABLE_STYLE = """
.sortable-component { background: transparent; }
.sortable-container { background-color: #F4F1EA; border-radius: 8px; min-width: 150px; }
.sortable-container-header { font-weight: 600; padding: 4px 10px; }
.sortable-container-body { min-height: 48px; }
.sortable-container:nth-child(n+5) .sortable-container-body { background-color: #FFF4D6; border: 2px dashed #C91A09; border-radius: 6px; }
.sortable-container:nth-child(n+5) .sortable-container-header { color: #C91A09; }
.sortable-item, .sortable-item:hover { background-color: #C91A09; color: #FFFFFF; border-radius: 6px; }
"""

st.title("Builder")

names_of = {kind: list(catalog(kind)) for kind in KINDS}
if not all(names_of.values()):
    missing = [KIND_LABEL[k] for k in KINDS if not names_of[k]]
    st.error(f"No {', '.join(missing)} bricks are registered in lego_core.bricks; the catalog is incomplete.")
    st.stop()


# ---- state ----------------------------------------------------------------------------------
def _clear_form_widgets() -> None:
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(("p-", "t-", "slot-"))]:
        del st.session_state[key]


if not isinstance(st.session_state.get("builder"), BuilderState):
    st.session_state["builder"] = BuilderState.initial()
state: BuilderState = st.session_state["builder"]
st.session_state.setdefault("builder_version", 0)
dataset_name = state.dataset = ui.current_dataset_name()
state.options = ui.current_options()


def _on_select(kind: str) -> None:
    state.set_brick(kind, st.session_state[f"slot-{kind}"])
    st.session_state["builder_version"] += 1


def _load_preset() -> None:
    if st.session_state["preset"] == CUSTOM:  # nothing to load
        return
    try:
        st.session_state["builder"] = BuilderState.from_recipe(Recipe.preset(st.session_state["preset"]))
    except LegoError as exc:
        st.session_state["builder_error"] = ui.one_line(exc)
        return
    _clear_form_widgets()
    st.session_state["builder_version"] += 1


def _widget(w: Widget, current, where=st):
    """Draw one described widget with the recipe value `current`; returns the recipe value."""
    shown, help_ = w.shown(current), w.help or None
    if w.kind == "checkbox":
        raw = where.checkbox(w.label, value=shown, key=w.key, help=help_)
    elif w.kind == "int":
        raw = where.number_input(w.label, value=shown, step=w.step_at(shown), key=w.key, help=help_,
                                 min_value=w.low, max_value=w.high)
    elif w.kind == "float":
        raw = where.number_input(w.label, value=shown, step=w.step_at(shown), key=w.key, help=help_, format="%g",
                                 min_value=w.low, max_value=w.high)
    elif w.kind == "select":
        raw = where.selectbox(w.label, w.choices, index=w.index(shown), key=w.key, help=help_, format_func=w.format)
    elif w.kind == "multiselect":
        raw = where.multiselect(w.label, w.choices, default=shown, key=w.key, help=help_)
    else:
        raw = where.text_input(w.label, value=shown, key=w.key, help=help_)
    return w.read(raw, current)


# ---- presets ----------------------------------------------------------------------------------
st.caption(f"Trains on **{ui.safe(dataset_name)}** (change it in the sidebar). Start from a preset or drag your own bricks.")
names = presets()
preset_slot = st.columns([2, 4])[0]  # drawn once every widget below has applied its change (_preset_box)
if err := st.session_state.pop("builder_error", None):
    st.error(err)


# ---- drag and drop ------------------------------------------------------------------------------
def _label(kind: str, name: str) -> str:
    return f"{name} ({KIND_LABEL[kind]})"


LABELS = {_label(k, n): (k, n) for k in KINDS for n in names_of[k]}


def _layout() -> list[dict]:
    palette = [{"header": PALETTE_TITLE[k], "items": [_label(k, n) for n in names_of[k] if n != state.bricks[k]]}
               for k in KINDS]
    slots = [{"header": SLOT_TITLE[k], "items": [_label(k, state.bricks[k])]} for k in KINDS]
    return palette + slots


st.subheader("Bricks", divider="gray")
st.caption("Drag a brick from a palette into its slot; the brick in the slot goes back to the palette. "
           "The select boxes below do the same from the keyboard.")
expected = _layout()
result = sort_items(expected, multi_containers=True, direction="horizontal", custom_style=SORTABLE_STYLE,
                    key=f"bricks-{st.session_state['builder_version']}")
if result != expected:
    moved = False
    for slot_kind, container in zip(KINDS, result[len(KINDS):]):
        for label in container["items"]:
            kind, name = LABELS.get(label, (None, None))
            if kind and state.set_brick(kind, name):
                if kind != slot_kind:
                    st.toast(f"'{name}' is a {KIND_LABEL[kind]} brick: it went into the {KIND_LABEL[kind]} slot.")
                moved = True
    if moved:
        for kind in KINDS:
            st.session_state[f"slot-{kind}"] = state.bricks[kind]
    st.session_state["builder_version"] += 1  # redraw the board from the state (also undoes stray moves)
    st.rerun()

# ---- select boxes + forms -------------------------------------------------------------------------
for kind, col in zip(KINDS, st.columns(3)):
    if st.session_state.get(f"slot-{kind}") != state.bricks[kind]:
        st.session_state[f"slot-{kind}"] = state.bricks[kind]
    with col:
        st.selectbox(f"{KIND_LABEL[kind].capitalize()} brick", names_of[kind], key=f"slot-{kind}",
                     on_change=_on_select, args=(kind,))
        spec = catalog(kind)[state.bricks[kind]]
        st.caption(f"{spec.description} — {spec.paper}" if spec.paper else spec.description)
        for w in state.param_widgets(kind):
            state.set_param(kind, w, _widget(w, state.param(kind, w)))

# ---- training settings ------------------------------------------------------------------------------
with st.expander("Training settings: embedding size, learning rate, epochs, item ID vector (hybrid), …",
                 expanded=False):
    tcols = st.columns(4)
    for i, w in enumerate(state.training_widgets()):
        state.set_setting(w, _widget(w, state.setting(w), tcols[i % 4]))
    try:  # the item fields forming the text, generated fields (Datasets page) included
        choices = field_choices(ui.load_dataset(dataset_name, state.options))
    except LegoError:
        choices = []
    chosen = [f for f in state.training.get("fields", []) if f in choices]
    version = st.session_state["builder_version"]  # a loaded preset redraws the picker with its fields
    picked = st.multiselect("Item fields", choices, default=chosen, key=f"fields-{dataset_name}-{version}",
                            help="Fields joined into each item's text; none = the dataset's default text fields. "
                                 "Fields generated on the Datasets page are listed too.")
    if picked:
        state.training["fields"] = picked
    else:
        state.training.pop("fields", None)
    loggers = state.logger_widget()  # TensorBoard / MLflow (README: Experiment trackers)
    state.set_setting(loggers, _widget(loggers, state.setting(loggers)))



def _preset_box() -> None:
    """The preset the bricks and settings are now, "Custom" once they differ; picking one loads it."""
    if names:
        st.session_state["preset"] = state.preset() or CUSTOM
        preset_slot.selectbox("Preset", [CUSTOM, *names], key="preset", on_change=_load_preset,
                              format_func=lambda n: "Custom" if n == CUSTOM else n.upper(),
                              help="Picking a preset loads its bricks and settings. It reads Custom as soon as "
                                   "they differ from every preset.")


_preset_box()
state.quick = st.toggle("Quick test run", key="quick",
                        help="1 epoch of at most 20 steps: checks a recipe end to end in well under a minute.")
if state.quick:
    st.caption("Quick test run: " + ", ".join(f"{label_of(k).lower()} {v}" for k, v in QUICK.items()))

# ---- check + size ---------------------------------------------------------------------------------------
st.subheader("Recipe", divider="gray")
check = state.check()
recipe = check.recipe
if check.reason:
    st.warning(f"These bricks do not fit together: {ui.safe(check.reason)}. Launch is disabled until they do.",
               icon=":material/block:")
elif check.error is not None:
    st.error(ui.one_line(check.error), icon=":material/error:")


@st.cache_data(max_entries=64, show_spinner="Building the model to count its parameters…")
def _model_size(recipe_yaml: str, dataset: str, options_json: str) -> dict:
    return frames.model_size(Recipe.from_yaml(recipe_yaml), ui.load_dataset(dataset, json.loads(options_json)))


@st.cache_data(max_entries=32, show_spinner="Timing a few training steps…")
def _measured_epoch(recipe_yaml: str, dataset: str, options_json: str) -> dict:
    return epoch_time.measure(Recipe.from_yaml(recipe_yaml), ui.load_dataset(dataset, json.loads(options_json)))


@st.cache_data(max_entries=64, show_spinner=False)
def _steps_per_epoch(_recipe: Recipe, _data, data_id: int, negatives: int, max_history: int, batch_size: int,
                     max_steps: int | None) -> int:
    """Steps per epoch on the loaded `_data`, once per setting named (MIND-large's take seconds to count)."""
    return epoch_time.steps_per_epoch(_recipe, _data)


def _epoch_time(recipe: Recipe, key: str) -> None:
    """Seconds per epoch before launch: from earlier runs of these bricks, else timed on request."""
    def steps() -> int:
        data, t = ui.load_dataset(dataset_name, state.options), recipe.training
        return _steps_per_epoch(recipe, data, id(data), t.negatives, t.max_history, t.batch_size, t.max_steps_per_epoch)

    def measured() -> dict:
        return _measured_epoch(key, dataset_name, json.dumps(state.options, sort_keys=True))

    try:
        found = epoch_time.estimate(recipe, ui.all_runs(), steps,
                                    measured if st.session_state.get("time_epoch") == key else None)
    except LegoError as exc:
        st.error(ui.one_line(exc))
        return
    e1, e2 = st.columns([1, 2])
    if found is None:
        if e1.button("Estimate epoch time", help="Times 3 training steps here (loads a language model first: "
                                                 "15 s or more)."):
            st.session_state["time_epoch"] = key
            st.rerun()
        return
    e1.metric("Epoch (estimate)", form.human_seconds(found["seconds"]), help=f"{found['per_step']:.2f} s per step")
    e2.caption(f"From {found['basis']}; {found['steps']:,} steps per epoch, "
               f"{recipe.training.epochs} epoch(s) at most.")


if check.ok:
    size_key = recipe.model_copy(update={"name": "size"}).to_yaml()
    m1, m2, m3 = st.columns(3)
    if not state.loads_language_model or st.session_state.get("count_lm") == size_key:
        try:
            size = _model_size(size_key, dataset_name, json.dumps(state.options, sort_keys=True))
            m1.metric("Parameters", frames.human_count(size["parameters"]), help=f"{size['parameters']:,} in total")
            m2.metric("Trainable", frames.human_count(size["trainable"]), help=f"{size['trainable']:,} trained")
            m3.metric("Memory (estimate)", f"{size['memory_mb']:,.0f} MB",
                      help="weights + Adam state of the trainable part + one batch of activations")
        except LegoError as exc:
            st.error(ui.one_line(exc))
    elif m1.button("Count parameters", help="Loads the language model (can take 15 s or more)."):
        st.session_state["count_lm"] = size_key
        st.rerun()
    _epoch_time(recipe, size_key)

if recipe is not None:
    text = recipe.to_yaml()
    with st.expander("Recipe YAML", expanded=False):
        st.code(text, language="yaml")
    st.download_button("Download recipe.yaml", text.encode("utf-8"), file_name=f"{recipe.name}.yaml",
                       mime="application/x-yaml", icon=":material/download:")

# ---- sweep mode ---------------------------------------------------------------------------------------
MODES = ("Single run", "Sweep")


def _range_input(w: RangeWidget):
    """Draw one sweep range (a slider, a slider over steps, or a multiselect); returns its value."""
    key = f"sweep-range-{w.key}"
    if w.kind == "choices":
        return st.multiselect(w.label, list(w.options), default=w.default, key=key, help=w.help or None)
    if w.kind == "steps":
        return st.select_slider(w.label, options=list(w.options), value=w.default, key=key, help=w.help or None,
                                format_func=lambda v: f"{v:g}")
    return st.slider(w.label, min_value=w.low, max_value=w.high, value=w.default, step=w.step, key=key,
                     help=w.help or None)


@st.cache_data(ttl=30, show_spinner=False)
def _estimate(spec_yaml: str, slots: int) -> dict:
    from lego_core import runs

    return form.estimate(SweepSpec.load(spec_yaml), runs.list(), slots)


def _sweep_form(recipe, device: str) -> None:
    """The Sweep mode: bricks per slot, ranges, seeds, sampler, budget; the number of trials and an
    estimated time; Launch sweep."""
    if recipe is None or check.error is not None and not check.reason:
        st.info("Fix the recipe above first: it is the base every trial starts from.", icon=":material/info:")
        return
    st.caption("The recipe above is the base: every trial starts from it. Pick more bricks per slot, parameter "
               "ranges and seeds; each trial is a normal run (see Training), ranked on the Leaderboard.")
    slots = {}
    for kind, col in zip(KINDS, st.columns(3)):
        slots[kind] = col.multiselect(f"{KIND_LABEL[kind].capitalize()} bricks to try", names_of[kind],
                                      default=[state.bricks[kind]], key=f"sweep-{kind}")
    widgets = {w.key: w for w in form.sweepable(slots)}
    vary = st.multiselect("Vary parameters", list(widgets), key="sweep-vary", format_func=lambda k: widgets[k].label,
                          help="Ranges start at the catalog's bounds; both ends equal means one value.")
    s1, s2, s3, s4 = st.columns(4)
    sampler = s1.selectbox("Sampler", ("grid", "random", "tpe"), key="sweep-sampler",
                           help="grid: every combination; random: independent draws; tpe: Optuna's TPE, "
                                "which draws near the best so far.")
    points = s2.number_input("Grid points per range", 2, 10, 3, key="sweep-points", disabled=sampler != "grid")
    seeds = s3.number_input("Seeds per configuration", 1, 10, 2, key="sweep-seeds",
                            help="Each configuration runs once per seed: the leaderboard shows the spread.")
    pruner = s4.selectbox("Pruner", ("none", "median", "halving"), key="sweep-pruner",
                          help="Stop trials whose validation metric after an epoch falls behind (Optuna's median "
                               "or successive-halving pruner).")
    params = {}
    if vary:
        rcols = st.columns(2)
        for i, key in enumerate(vary):
            with rcols[i % 2]:
                params[key] = form.param_entry(widgets[key], _range_input(widgets[key]), int(points))
    b1, b2, _ = st.columns([1, 1, 2])
    trials = b1.number_input("Budget: trials", 1, 10000, 24, key="sweep-trials",
                             help="Runs in all (configurations × seeds).")
    minutes = b2.number_input("Budget: minutes (0 = no limit)", 0, 100000, 0, key="sweep-minutes")
    try:
        spec = form.spec_from_form(recipe, slots, params, seeds, trials, minutes, sampler, pruner,
                                   name=recipe.name if recipe.name != "custom" else "sweep", device=device)
    except LegoError as exc:
        st.error(ui.one_line(exc), icon=":material/error:")
        return
    from lego_core import jobs

    limit = jobs.Devices.here(cuda=device.startswith("cuda")).limit(device)
    guess = _estimate(spec.to_yaml(), limit)
    space = "" if guess["space"] is None else f" of {guess['space']} possible"
    n = guess["configurations"]
    st.markdown(f"**{guess['trials']} trials**: {n} configuration{'s' if n != 1 else ''}{space} × "
                f"{guess['seeds']} seed(s), {limit} at once on {ui.safe(device)}. "
                f"Estimated time: **{form.human_seconds(guess['seconds'])}**")
    st.caption(f"Estimate from {ui.safe(guess['basis'])}; pruning makes it shorter.")
    st.download_button("Download sweep.yaml", spec.to_yaml().encode("utf-8"), file_name="sweep.yaml",
                       mime="application/x-yaml", icon=":material/download:")
    if ui.read_only():
        ui.read_only_note("Launching sweeps")
        return
    if st.button("Launch sweep", type="primary", icon=":material/rocket_launch:", key="sweep-launch",
                 disabled=not guess["trials"]):
        with ui.lego_errors():
            from lego_core import sweeps

            sweep_id = sweeps.launch(spec)
            st.session_state["select_sweep"] = sweep_id
            st.session_state["last_sweep"] = sweep_id
    if last := st.session_state.get("last_sweep"):
        st.success(f"Launched sweep {last}. Its trials run in the background; compare them on the Leaderboard.",
                   icon=":material/check_circle:")
        st.page_link("pages/leaderboard.py", label="Open Leaderboard", icon=":material/leaderboard:")


# ---- launch -----------------------------------------------------------------------------------------
st.subheader("Launch", divider="gray")
mode = st.radio("Mode", MODES, key="builder-mode", horizontal=True,
                help="Single run: train this recipe once. Sweep: use it as the base and try several bricks per "
                     "slot, parameter ranges and seeds; compare them on the Leaderboard.")
targets = devices.choices()
lc1, lc2 = st.columns([2, 1], vertical_alignment="bottom")
target = lc1.selectbox("Device", range(len(targets)), format_func=lambda i: targets[i]["label"], key="device")
if mode == MODES[1]:
    _sweep_form(recipe, targets[target]["device"])
    st.stop()
launch = False
if ui.read_only():
    ui.read_only_note("Launching runs")
else:
    launch = lc2.button("Launch", type="primary", icon=":material/rocket_launch:",
                        disabled=not check.ok)
if launch and check.ok:
    choice = targets[target]
    with ui.lego_errors():
        from lego_core import jobs

        run_id = jobs.launch(recipe, device=choice["device"], nproc=choice["nproc"])
        st.session_state["select_run"] = run_id
        st.session_state["last_launch"] = run_id
if last := st.session_state.get("last_launch"):
    st.success(f"Launched run {last}. It trains in the background; follow it on the Training page.",
               icon=":material/check_circle:")
    st.page_link("pages/training.py", label="Open Training", icon=":material/monitoring:")
