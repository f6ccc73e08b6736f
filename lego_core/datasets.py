"""Re-export of the public dataset API (`from lego_core import datasets`): lego_core.data.datasets."""
from lego_core.data.datasets import *  # noqa: F401,F403
from lego_core.data.datasets import add, available, check, load, register_mind, register_tables, remove, show  # noqa: F401
