"""Datasets: the public dataset API (`datasets`: load, check, available, register), registration
of any known format (`registration` adds one, `store` keeps them, `formats`, `cache`), one reader per format
(`readers/`), the one schema every reader produces (`schema`), the shared protocols (`leave_last_out`,
`cold`), item text and tokens (`text`, `tokenize`), training batches (`batches`) and generated item
fields (`generated`).

May import core only.
"""
