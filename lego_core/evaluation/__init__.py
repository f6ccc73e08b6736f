"""Judging a model: the metrics (`metrics`, vectorised over impressions), cached and uncached
evaluation of a model on a split (`evaluate`, all / warm / cold parts; in one process or shared
by the ranks of a torchrun group) and the popularity floor every run is compared against
(`popularity`).

May import core, data, lm and bricks.
"""
