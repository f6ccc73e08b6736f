"""Training a recipe: the loop (`train`: `Trainer` and `run`), the item table that history slots
read from (`history_cache`), the `TrainingLog` and `Checkpointer` protocols with their run-folder
and in-memory implementations (`logs`, `checkpoints`), seconds per epoch before a launch
(`epoch_time`) and the embedding tables written after training (`tables`).

May import core, data, lm, bricks and evaluation.
"""
