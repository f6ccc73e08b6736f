"""Lego bricks and what is built from them: content operators (`content/`), behaviour operators
(`behavior/`) and click predictors (`predictors/`), one brick per file with its paper; the
`catalog` of typed params; `settings` (every editable setting described once); the `recipe` that
names a dataset and three bricks; the `model` (`Legommender`) built from a recipe.

May import core, data and lm.
"""
from lego_core.bricks.catalog import BrickSpec, Param, catalog, compatible, get, register

__all__ = ["BrickSpec", "Param", "catalog", "compatible", "get", "register"]
