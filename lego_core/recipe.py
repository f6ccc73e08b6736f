"""Re-export of the recipe (`from lego_core.recipe import Recipe`): lego_core.bricks.recipe."""
from lego_core.bricks.recipe import *  # noqa: F401,F403
from lego_core.bricks.recipe import Recipe, presets  # noqa: F401
