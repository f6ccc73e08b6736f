"""lego_core: content-based recommenders composed from Lego bricks (content, behaviour, predictor)."""

__version__ = "0.1.0"
