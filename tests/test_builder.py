"""lego_core.explore.builder: BuilderState <-> Recipe round trip, widget descriptions for every catalog brick
and the Training fields, and the one pre-launch check."""
from __future__ import annotations

import pytest

from lego_core.explore.builder import QUICK, TRAINING_FORM, BuilderState, param_widgets, training_widgets
from lego_core.bricks.catalog import KINDS, catalog, get
from lego_core.bricks.recipe import Recipe, Training, presets
from lego_core.bricks.settings import described, label_of, logger_widget


@pytest.mark.parametrize("name", presets())
def test_every_preset_round_trips(name):
    recipe = Recipe.preset(name)
    state = BuilderState.from_recipe(recipe)
    assert state.to_recipe() == recipe
    assert state.to_recipe().to_yaml() == recipe.to_yaml()
    assert BuilderState.from_recipe(state.to_recipe()) == state
    assert state.name == name and state.bricks == {k: getattr(recipe, k).name for k in KINDS}
    assert all(Training.model_fields[k].get_default(call_default_factory=True) != v for k, v in state.training.items())


def test_initial_state_is_the_default_preset_and_valid():
    state = BuilderState.initial()
    assert state.name == "nrms" and state.to_recipe() == Recipe.preset("nrms")
    assert state.check().ok


@pytest.mark.parametrize("key", sorted(catalog()))
def test_every_catalog_param_has_a_widget_whose_default_validates(key):
    kind, name = key.split("/", 1)
    spec = get(name, kind)
    widgets = param_widgets(kind, name)
    assert [w.name for w in widgets] == [p.name for p in spec.params]
    for w, p in zip(widgets, spec.params):
        assert w.key == f"p-{kind}-{name}-{p.name}" and w.default == p.default
        assert w.help == described(p.help, f"{kind}.params.{p.name}")  # what it does, then its config key
        assert w.kind == {"int": "int", "float": "float", "bool": "checkbox", "choice": "select"}.get(p.type, "text")
        assert p.check(w.default, name) == p.default
        assert p.check(w.read(w.shown(w.default), w.default), name) == p.default  # untouched widget
        if w.kind in ("int", "float"):
            assert (w.low, w.high) == (p.low, p.high)
            assert type(w.shown(w.default)) is (int if w.kind == "int" else float)
            assert all(b is None or type(b) is type(w.shown(w.default)) for b in (w.low, w.high))
            assert (w.low is None or w.low <= w.default) and (w.high is None or w.default <= w.high)
        if w.kind == "select":
            assert w.choices == tuple(p.choices) and w.default in w.choices
    assert spec.validate({w.name: w.default for w in widgets}) == spec.defaults()


def test_training_widgets_follow_pydantic_field_info():
    widgets = {w.name: w for w in training_widgets(None, names=None)}
    fields = Training.model_fields
    assert set(fields) - set(widgets) == {"fields", "loggers"}  # lists: the page draws them (settings.logger_widget)
    for name, w in widgets.items():
        assert w.key == f"t-{name}" and (fields[name].description or "")[1:] in w.help  # capitalised
        Training(**{name: w.default})  # every default validates
        Training(**{name: w.read(w.shown(w.default), w.default)})
        if w.kind in ("int", "float") and w.default is not None:
            assert (w.low is None or w.low <= w.default) and (w.high is None or w.default <= w.high)
            if w.low is not None:
                Training(**{name: w.low})  # the widget's bounds are valid values
            if w.high is not None:
                Training(**{name: w.high})
    assert (widgets["dim"].kind, widgets["dim"].low, widgets["dim"].high) == ("int", 4, 4096)
    assert widgets["lr"].kind == "float" and widgets["lr"].low is None and widgets["lr"].high == 1.0  # gt=0: open
    assert widgets["lr"].step_at(1e-3) == pytest.approx(1e-4)
    assert widgets["metric"].kind == "select" and "ndcg@10" in widgets["metric"].choices
    assert widgets["glove"].kind == "checkbox" and widgets["glove"].default is True
    cap = widgets["max_steps_per_epoch"]
    assert (cap.kind, cap.optional, cap.low, cap.shown(None)) == ("int", True, 0, 0)
    assert cap.read(0, 20) is None and cap.read(30, None) == 30
    template = widgets["template"]
    assert template.kind == "text" and template.read("", "x") is None and template.read("{title}", None) == "{title}"


def test_training_form_order_and_loss_choices_follow_the_predictor():
    assert [w.name for w in training_widgets("dot")] == list(TRAINING_FORM)
    for predictor in catalog("predictor"):
        loss = {w.name: w for w in training_widgets(predictor)}["loss"]
        assert loss.choices == (None, *get(predictor, "predictor").losses)
        assert loss.format(None) == "predictor default"


def test_every_setting_has_words_for_a_label_and_its_config_key_in_the_help():
    widgets = {w.name: w for w in training_widgets(None, names=None)}
    assert (widgets["dim"].label, widgets["lr"].label, widgets["item_id"].label) == (
        "Embedding size", "Learning rate", "Item ID vector")
    assert [widgets["item_id"].format(c) for c in widgets["item_id"].choices] == ["off", "added", "gated"]
    assert widgets["max_steps_per_epoch"].label == "Steps per epoch (cap)"
    assert "0 = none" in widgets["max_steps_per_epoch"].help
    for w in [*widgets.values(), logger_widget()]:
        assert w.label != w.name and w.label[0].isupper() and "_" not in w.label, w.name
        assert w.help.endswith(f"Config key: `training.{w.name}`") and len(w.help) > 40, w.name  # words first
        assert label_of(f"training.{w.name}") == w.label
    for key in sorted(catalog()):
        kind, brick = key.split("/", 1)
        for w in param_widgets(kind, brick):
            assert w.label[0].isupper() and "_" not in w.label, (key, w.name)
            assert f"Config key: `{kind}.params.{w.name}`" in w.help
    assert param_widgets("content", "attention")[3].label == "Attention heads"


def test_the_preset_is_recognised_until_bricks_or_settings_differ():
    for name in presets():
        assert BuilderState.from_recipe(Recipe.preset(name)).preset() == name
    state = BuilderState.initial()
    state.dataset, state.options, state.quick = "synthetic", {"n_items": 50}, True  # not part of a preset
    assert state.preset() == "nrms"
    state.set_brick("content", "cnn")
    assert state.preset() is None  # "Custom" on the page, never another preset's name
    state.set_brick("content", "attention")
    assert state.preset() == "nrms"
    dim = next(w for w in state.training_widgets() if w.name == "dim")
    state.set_setting(dim, 2 * dim.default)
    assert state.preset() is None
    state.set_setting(dim, dim.default)
    heads = next(w for w in state.param_widgets("content") if w.name == "heads")
    state.set_param("content", heads, 2)
    assert state.preset() is None
    state.set_param("content", heads, heads.default)
    assert state.preset() == "nrms"


def test_brick_changes_remember_params_and_mark_custom():
    state = BuilderState.from_recipe(Recipe.preset("nrms"))
    heads = next(w for w in state.param_widgets("content") if w.name == "heads")
    state.set_param("content", heads, 2)
    assert state.to_recipe().content.params == {"heads": 2}
    assert state.set_brick("content", "cnn") and state.name == "custom" and state.params["content"] == {}
    assert not state.set_brick("content", "cnn")
    state.set_brick("content", "attention")
    assert state.param("content", heads) == 2
    state.set_param("content", heads, heads.default)  # back to the default: dropped from the recipe
    assert state.to_recipe().content.params == {}


def test_training_settings_and_quick_run():
    state = BuilderState.initial()
    epochs = next(w for w in state.training_widgets() if w.name == "epochs")
    state.set_setting(epochs, 9)
    assert state.to_recipe().training.epochs == 9 and state.training == {"epochs": 9}
    state.set_setting(epochs, epochs.default)
    assert state.training == {}
    state.quick = True
    assert state.to_recipe() == Recipe.preset("nrms").with_overrides(QUICK)


def test_check_explains_incompatible_bricks_once_and_other_problems():
    state = BuilderState.from_recipe(Recipe.preset("nrms"))
    state.set_brick("behavior", "poly")
    check = state.check()
    assert not check.ok and "poly" in check.reason and "dot" in check.reason and check.error is None
    assert check.recipe is not None and check.recipe.behavior.name == "poly"  # still shown as YAML
    state.set_brick("predictor", "miner")
    assert state.check().ok
    state.options = {"no_such_option": 1}  # dataset options are part of the pre-launch check
    check = state.check()
    assert not check.ok and check.reason is None and check.error is not None
    state.options, state.training = {}, {"dim": 1}
    check = state.check()
    assert check.recipe is None and "training.dim" in str(check.error)


def test_language_model_bricks_are_flagged():
    state = BuilderState.initial()
    assert not state.loads_language_model
    state.set_brick("content", "lm_encoder")
    assert state.loads_language_model
