"""The vocabulary and utilities every layer shares: errors (`LegoError` and its family), paths
(the cache folder, `confine` for visitor-supplied paths), fileio (atomic writes and the one file
lock), devices (the one "auto" device resolver), process (whether a pid provably belongs to a run)
and metric_names (the names recipes and evaluation share).

Imports nothing else of lego_core.
"""
