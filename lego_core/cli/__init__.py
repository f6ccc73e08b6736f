"""`python -m lego_core ...`: one module per command group (`main` builds the parser and holds
`train` / `evaluate`; `datasets`, `jobs`, `sweeps`, `augment`). A mistake prints one line and
exits 2.

May import every layer (it is the top).
"""
