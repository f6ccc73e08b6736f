"""Re-export of recommendations (`from lego_core import recommend`): lego_core.runs.recommend."""
from lego_core.runs.recommend import *  # noqa: F401,F403
from lego_core.runs.recommend import recommend, scorer  # noqa: F401
