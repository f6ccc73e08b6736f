"""The processed-dataset store's layouts: format 2 (memory-mapped .npy files and the stored cold
mask) is written; format 1 (one zipped arrays.npz, as registrations made before it hold) still
reads."""
import json

import numpy as np

from lego_core.data.processed import ARRAYS, COLD, read_dataset, write_dataset
from lego_core.data.readers import mind
from test_data_mind import write_mind


def test_format_1_registrations_still_read(tmp_path):
    dataset = mind.build_mind(write_mind(tmp_path / "m"))
    new = tmp_path / "new"
    new.mkdir()
    write_dataset(dataset, new)
    assert (new / ARRAYS / "train.items.npy").is_file() and (new / COLD).is_file()
    old = tmp_path / "old"  # the same dataset as format 1 wrote it
    old.mkdir()
    np.savez(old / "arrays.npz", **{p.stem: np.load(p) for p in (new / ARRAYS).glob("*.npy")})
    (old / "items.parquet").write_bytes((new / "items.parquet").read_bytes())
    meta = json.loads((new / "meta.json").read_text())
    (old / "meta.json").write_text(json.dumps(meta | {"format": 1}))
    a, b = read_dataset(new), read_dataset(old)
    assert b.cold is None and a.cold is not None and a.cold.dtype == bool  # format 1 stored no mask
    assert a.users.tolist() == b.users.tolist() and np.array_equal(a.seq_items, b.seq_items)
    for split in a.splits:
        assert np.array_equal(a.splits[split].items, b.splits[split].items)
        assert np.array_equal(a.splits[split].labels, b.splits[split].labels)
