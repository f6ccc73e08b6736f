"""Lego bricks: content operators, behaviour operators and click predictors."""
from lego_core.operators.catalog import BrickSpec, Param, catalog, compatible, get, register

__all__ = ["BrickSpec", "Param", "catalog", "compatible", "get", "register"]
