"""Recipes: YAML round trip, presets, overrides and the one-line errors for bad recipes."""
import pytest

from lego_core.core.errors import RecipeError
from lego_core.bricks.recipe import Recipe, presets

CLASSIC = ["din", "fastformer", "idonly", "lstur", "miner", "naml", "nrms"]


def test_presets_listed_and_valid():
    names = presets()
    for name in CLASSIC + ["plmnr", "plmnr-frozen", "once", "once-frozen"]:
        assert name in names
        recipe = Recipe.preset(name).validate()
        assert Recipe.from_yaml(recipe.to_yaml()) == recipe


def test_overrides_parse_scalars():
    recipe = Recipe.preset("nrms").with_overrides(["training.epochs=1", "training.amp=false",
                                                    "content.params.heads=2", "dataset.options.n_items=50"])
    assert recipe.training.epochs == 1 and recipe.training.amp is False
    assert recipe.content.params["heads"] == 2 and recipe.dataset.options["n_items"] == 50


@pytest.mark.parametrize("change, message", [
    ({"content.name": "nope"}, "unknown content 'nope'"),
    ({"behavior.name": "poly"}, "several interest vectors"),
    ({"training.dim": 1}, "training.dim"),
    ({"training.metric": "accuracy"}, "training.metric"),
    ({"training.device": "tpu"}, "training.device"),
    ({"training.bogus": 3}, "training.bogus"),
    ({"content.params.heads": 0}, "attention.heads"),
    ({"content.params.nonsense": 1}, "no parameter 'nonsense'"),
])
def test_bad_recipes_are_refused_with_one_line(change, message):
    with pytest.raises(RecipeError) as info:
        Recipe.preset("nrms").with_overrides(change).validate()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="not valid YAML"):
        Recipe.from_yaml("content: [unclosed\nbehavior: x\n")
    with pytest.raises(RecipeError, match="not found"):
        Recipe.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(RecipeError, match="unknown preset"):
        Recipe.preset("nonexistent")


def test_loss_must_be_supported_by_predictor():
    recipe = Recipe.preset("din")
    assert recipe.loss == "bce"
    assert Recipe.preset("nrms").loss == "softmax"
