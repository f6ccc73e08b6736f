"""One reader per dataset format (MIND, xMIND, PENS, EB-NeRD, Adressa, MovieLens variants,
Goodreads, Amazon, RecBole atomic files, tables, synthetic). Each produces `lego_core.data.schema.
Dataset` and shares code with the others only through public functions of lego_core.data.

May import core and lego_core.data.
"""
