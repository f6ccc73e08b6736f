"""Re-export of training (`from lego_core import train; train.run(recipe, run)`): lego_core.training.train."""
from lego_core.training.train import *  # noqa: F401,F403
from lego_core.training.train import Trainer, run  # noqa: F401
