"""Builder: drag bricks (or pick them from select boxes) into the content, behaviour and predictor
slots, set their hyper-parameters from forms the catalog describes, check the recipe, see its size,
download it as YAML and launch training in the background."""
from __future__ import annotations

import json
import math

import streamlit as st
from streamlit_sortables import sort_items

from lego_core import viz
from lego_core.errors import LegoError
from lego_core.operators import catalog, compatible, get
from lego_core.recipe import VALIDATION_METRICS, Recipe, Training, presets
from pages import _common as ui

ui.require_navigation()

KINDS = ("content", "behavior", "predictor")
KIND_LABEL = {"content": "content", "behavior": "behaviour", "predictor": "predictor"}
SLOT_TITLE = {"content": "Content slot", "behavior": "Behaviour slot", "predictor": "Predictor slot"}
PALETTE_TITLE = {"content": "Content bricks", "behavior": "Behaviour bricks", "predictor": "Predictors"}
# Training settings shown in the form, in this order (the rest keep their defaults; YAML shows all).
TRAINING_FORM = ("dim", "epochs", "batch_size", "negatives", "lr", "lr_pretrained", "patience", "metric",
                 "max_history", "max_length", "loss", "glove", "seed", "max_steps_per_epoch")
QUICK = {"training.epochs": 1, "training.max_steps_per_epoch": 20, "training.patience": 0}
DEFAULT_PRESET = "nrms"

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

specs = {kind: catalog(kind) for kind in KINDS}
if not all(specs.values()):
    missing = [KIND_LABEL[k] for k in KINDS if not specs[k]]
    st.error(f"No {', '.join(missing)} bricks are registered in lego_core.operators; the catalog is incomplete.")
    st.stop()


# ---- state ----------------------------------------------------------------------------------
def _recipe_state(recipe: Recipe) -> dict:
    data = recipe.model_dump(mode="json")
    defaults = Training().model_dump(mode="json")
    return {"name": data["name"], **{k: {"name": data[k]["name"], "params": dict(data[k]["params"])} for k in KINDS},
            "training": {k: v for k, v in data["training"].items() if defaults.get(k) != v}}


def _initial_state() -> dict:
    names = presets()
    for name in ([DEFAULT_PRESET] if DEFAULT_PRESET in names else []) + names:
        try:
            return _recipe_state(Recipe.preset(name).validate())
        except LegoError:
            continue
    first = {k: next(iter(specs[k])) for k in KINDS}
    return {"name": "custom", **{k: {"name": first[k], "params": {}} for k in KINDS}, "training": {}}


def _clear_form_widgets() -> None:
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(("p-", "t-", "slot-"))]:
        del st.session_state[key]


if "builder" not in st.session_state:
    st.session_state["builder"] = _initial_state()
state: dict = st.session_state["builder"]
st.session_state.setdefault("builder_version", 0)


def _set_brick(kind: str, name: str) -> None:
    if state[kind]["name"] != name:
        remembered = state.setdefault("remembered", {}).setdefault(kind, {})
        remembered[state[kind]["name"]] = state[kind]["params"]
        state[kind] = {"name": name, "params": dict(remembered.get(name, {}))}
        state["name"] = "custom"


def _on_select(kind: str) -> None:
    _set_brick(kind, st.session_state[f"slot-{kind}"])
    st.session_state["builder_version"] += 1


def _load_preset() -> None:
    name = st.session_state["preset"]
    try:
        st.session_state["builder"] = _recipe_state(Recipe.preset(name))
    except LegoError as exc:
        st.session_state["builder_error"] = ui.one_line(exc)
        return
    _clear_form_widgets()
    st.session_state["builder_version"] += 1


# ---- presets ----------------------------------------------------------------------------------
dataset_name = ui.current_dataset_name()
st.caption(f"Trains on **{ui.safe(dataset_name)}** (change it in the sidebar). Start from a preset or drag your own bricks.")
names = presets()
if names:
    pc1, pc2, _ = st.columns([2, 1, 3], vertical_alignment="bottom")
    pc1.selectbox("Preset", names, key="preset", format_func=lambda n: n.upper(),
                  index=names.index(state["name"]) if state["name"] in names else 0)
    pc2.button("Load preset", on_click=_load_preset, icon=":material/upload:")
if err := st.session_state.pop("builder_error", None):
    st.error(err)


# ---- drag and drop ------------------------------------------------------------------------------
def _label(kind: str, name: str) -> str:
    return f"{name} ({KIND_LABEL[kind]})"


LABELS = {_label(k, n): (k, n) for k in KINDS for n in specs[k]}


def _layout() -> list[dict]:
    palette = [{"header": PALETTE_TITLE[k], "items": [_label(k, n) for n in specs[k] if n != state[k]["name"]]}
               for k in KINDS]
    slots = [{"header": SLOT_TITLE[k], "items": [_label(k, state[k]["name"])]} for k in KINDS]
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
            if kind and name != state[kind]["name"]:
                if kind != slot_kind:
                    st.toast(f"'{name}' is a {KIND_LABEL[kind]} brick: it went into the {KIND_LABEL[kind]} slot.")
                _set_brick(kind, name)
                moved = True
    if moved:
        for kind in KINDS:
            st.session_state[f"slot-{kind}"] = state[kind]["name"]
    st.session_state["builder_version"] += 1  # redraw the board from the state (also undoes stray moves)
    st.rerun()

# ---- select boxes + forms -------------------------------------------------------------------------
columns = st.columns(3)
for kind, col in zip(KINDS, columns):
    spec_names = list(specs[kind])
    if st.session_state.get(f"slot-{kind}") != state[kind]["name"]:
        st.session_state[f"slot-{kind}"] = state[kind]["name"]
    with col:
        st.selectbox(f"{KIND_LABEL[kind].capitalize()} brick", spec_names, key=f"slot-{kind}",
                     on_change=_on_select, args=(kind,))
        spec = specs[kind][state[kind]["name"]]
        st.caption(f"{spec.description} — {spec.paper}" if spec.paper else spec.description)
        params = state[kind]["params"]
        for p in spec.params:
            key = f"p-{kind}-{spec.name}-{p.name}"
            current = params.get(p.name, p.default)
            label, help_ = p.name.replace("_", " "), p.help or None
            if p.type == "bool":
                value = st.checkbox(label, value=bool(current), key=key, help=help_)
            elif p.type == "int":
                value = st.number_input(label, value=int(current), step=1, key=key, help=help_,
                                        min_value=int(p.low) if p.low is not None else None,
                                        max_value=int(p.high) if p.high is not None else None)
            elif p.type == "float":
                value = st.number_input(label, value=float(current), key=key, help=help_, format="%g",
                                        min_value=float(p.low) if p.low is not None else None,
                                        max_value=float(p.high) if p.high is not None else None)
            elif p.type == "choice" and p.choices:
                choices = list(p.choices)
                value = st.selectbox(label, choices, index=choices.index(current) if current in choices else 0,
                                     key=key, help=help_)
            else:
                value = st.text_input(label, value="" if current is None else str(current), key=key, help=help_)
            if value != p.default:
                params[p.name] = value
            else:
                params.pop(p.name, None)

def _step(value: float) -> float:
    """A step of one unit in the value's leading digit (1e-3 -> 1e-4 steps), for learning rates."""
    return 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value else 0.01


# ---- training settings ------------------------------------------------------------------------------
fields = Training.model_fields
with st.expander("Training settings", expanded=False):
    tcols = st.columns(4)
    training = state["training"]
    for i, name in enumerate(n for n in TRAINING_FORM if n in fields):
        info, col = fields[name], tcols[i % 4]
        default = info.get_default(call_default_factory=True)
        current = training.get(name, default)
        key, help_ = f"t-{name}", info.description
        bounds = {m.__class__.__name__: m for m in info.metadata}
        low = getattr(bounds.get("Ge"), "ge", None) if "Ge" in bounds else getattr(bounds.get("Gt"), "gt", None)
        high = getattr(bounds.get("Le"), "le", None)
        if name == "metric":
            value = col.selectbox(name, VALIDATION_METRICS, index=VALIDATION_METRICS.index(current), key=key, help=help_)
        elif name == "loss":
            options = [None, *get(state["predictor"]["name"], "predictor").losses]
            value = col.selectbox(name, options, index=options.index(current) if current in options else 0, key=key,
                                  help=help_, format_func=lambda v: "predictor default" if v is None else v)
        elif isinstance(default, bool):
            value = col.checkbox(name, value=bool(current), key=key, help=help_)
        elif name == "max_steps_per_epoch":
            value = col.number_input(name, min_value=0, value=int(current or 0), step=10, key=key,
                                     help="cap on steps per epoch (0 = no cap)") or None
        elif isinstance(default, int):
            value = col.number_input(name, value=int(current), step=1, key=key, help=help_,
                                     min_value=int(low) if low is not None else None,
                                     max_value=int(high) if high is not None else None)
        else:
            value = col.number_input(name, value=float(current), key=key, help=help_, format="%g",
                                     step=_step(float(current)), min_value=None, max_value=float(high) if high is not None else None)
        if value != default:
            training[name] = value
        else:
            training.pop(name, None)

quick = st.toggle("Quick test run", key="quick",
                  help="1 epoch of at most 20 steps: checks a recipe end to end in well under a minute.")
if quick:
    st.caption("Quick test run: " + ", ".join(f"{k.split('.')[1]} = {v}" for k, v in QUICK.items()))

# ---- check + size ---------------------------------------------------------------------------------------
st.subheader("Recipe", divider="gray")
recipe, problem = None, None
reason = compatible(state["content"]["name"], state["behavior"]["name"], state["predictor"]["name"])
try:
    recipe = Recipe.from_dict({"name": state["name"], "dataset": {"name": dataset_name, "options": ui.current_options()},
                               **{k: {"name": state[k]["name"], "params": state[k]["params"]} for k in KINDS},
                               "training": state["training"]}, "builder")
    if quick:
        recipe = recipe.with_overrides(QUICK)
    recipe.validate()
except LegoError as exc:
    problem = ui.one_line(exc)
if reason:
    st.warning(f"These bricks do not fit together: {reason}. Launch is disabled until they do.",
               icon=":material/block:")
elif problem:
    st.error(problem, icon=":material/error:")


@st.cache_data(max_entries=64, show_spinner="Building the model to count its parameters…")
def _model_size(recipe_yaml: str, dataset: str, options_json: str) -> dict:
    return viz.model_size(Recipe.from_yaml(recipe_yaml), ui.load_dataset(dataset, json.loads(options_json)))


if recipe is not None and not reason and not problem:
    needs_lm = "lm_tokens" in specs["content"][recipe.content.name].needs
    size_key = recipe.model_copy(update={"name": "size"}).to_yaml()
    m1, m2, m3 = st.columns(3)
    if not needs_lm or st.session_state.get("count_lm") == size_key:
        try:
            size = _model_size(size_key, dataset_name, json.dumps(ui.current_options(), sort_keys=True))
            m1.metric("Parameters", viz.human_count(size["parameters"]), help=f"{size['parameters']:,} in total")
            m2.metric("Trainable", viz.human_count(size["trainable"]), help=f"{size['trainable']:,} trained")
            m3.metric("Memory (estimate)", f"{size['memory_mb']:,.0f} MB",
                      help="weights + Adam state of the trainable part + one batch of activations")
        except LegoError as exc:
            st.error(ui.one_line(exc))
    elif m1.button("Count parameters", help="Loads the language model (can take 15 s or more)."):
        st.session_state["count_lm"] = size_key
        st.rerun()

if recipe is not None:
    text = recipe.to_yaml()
    with st.expander("Recipe YAML", expanded=False):
        st.code(text, language="yaml")
    st.download_button("Download recipe.yaml", text.encode("utf-8"), file_name=f"{recipe.name}.yaml",
                       mime="application/x-yaml", icon=":material/download:")

# ---- launch -----------------------------------------------------------------------------------------
st.subheader("Launch", divider="gray")
targets = viz.devices()
lc1, lc2 = st.columns([2, 1], vertical_alignment="bottom")
target = lc1.selectbox("Device", range(len(targets)), format_func=lambda i: targets[i]["label"], key="device")
launch = False
if ui.read_only():
    ui.read_only_note("Launching runs")
else:
    launch = lc2.button("Launch", type="primary", icon=":material/rocket_launch:",
                        disabled=recipe is None or bool(reason or problem))
if launch and recipe is not None:
    choice = targets[target]
    with ui.lego_errors():
        from lego_core import jobs

        run_id = jobs.launch(recipe, device=choice["device"],
                             nproc=choice["nproc"])
        st.session_state["select_run"] = run_id
        st.session_state["last_launch"] = run_id
if last := st.session_state.get("last_launch"):
    st.success(f"Launched run {last}. It trains in the background; follow it on the Training page.",
               icon=":material/check_circle:")
    st.page_link("pages/training.py", label="Open Training", icon=":material/monitoring:")
