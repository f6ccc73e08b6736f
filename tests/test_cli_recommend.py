"""`lego recommend RUN -o FILE`: the top-k of every user streamed to Parquet or CSV, the same items
and scores as `recommend.recommend` for each user, in bounded [users x item-chunk] blocks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lego_core import runs
from lego_core.bricks.recipe import Recipe
from lego_core.cli.main import main
from lego_core.runs import recommend, topk
from lego_core.training import train
from test_loggers import TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGO_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        recipe = Recipe.preset("din").with_overrides(TINY)  # a history-aware predictor: the hard case
        run = runs.create(recipe)
        train.run(recipe, run, progress=False)
        yield run


def expected(run, user: str, k: int, exclude_seen: bool = True) -> pd.DataFrame:
    found = recommend.scorer(run)
    row = found.row(user)
    seen = found.dataset.history(row, found.test_ends[row])
    exclude = [found.item_ids[i] for i in seen] if exclude_seen else None
    return recommend.recommend(run, user, k=k, exclude=exclude)


def test_every_user_gets_the_same_top_k_as_recommend(trained, tmp_path):
    out = tmp_path / "top.parquet"
    assert main(["recommend", str(trained.path), "-o", str(out), "-k", "5", "--batch-size", "7", "--quiet"]) == 0
    got = pd.read_parquet(out)
    assert list(got.columns) == ["user_id", "rank", "item_id", "score"]
    users = recommend.scorer(trained).user_rows
    assert got["user_id"].unique().tolist() == list(users) and (got.groupby("user_id").size() == 5).all()
    for user in list(users)[::5]:
        mine, theirs = got[got["user_id"] == user], expected(trained, user, 5)
        assert mine["item_id"].tolist() == theirs["item_id"].tolist()
        assert mine["rank"].tolist() == [1, 2, 3, 4, 5]
        np.testing.assert_allclose(mine["score"], theirs["score"], rtol=1e-5, atol=1e-6)


def test_chosen_users_to_csv_with_seen_items_kept(trained, tmp_path):
    users = list(recommend.scorer(trained).user_rows)[:3]
    (tmp_path / "users.txt").write_text("\n".join(users) + "\n")
    out = tmp_path / "top.csv"
    assert main(["recommend", str(trained.path), "-o", str(out), "-k", "4", "--users", str(tmp_path / "users.txt"),
                 "--include-seen", "--quiet"]) == 0
    got = pd.read_csv(out, dtype={"user_id": str, "item_id": str})
    assert got["user_id"].unique().tolist() == users
    for user in users:
        theirs = expected(trained, user, 4, exclude_seen=False)
        assert got[got["user_id"] == user]["item_id"].tolist() == theirs["item_id"].tolist()


def test_users_stream_in_bounded_blocks(trained, monkeypatch):
    """Tiny blocks (2 users x a few items) give the same ranking as one block: the running top-k
    merge is exact, and no block is users x items."""
    whole = pd.concat(topk.batches(trained, k=6, progress=False))
    shapes = []
    model = recommend.scorer(trained).model
    original = model.score

    def recording(user, candidates, history, mask):
        shapes.append(tuple(candidates.shape[:2]))
        return original(user, candidates, history, mask)

    monkeypatch.setattr(model, "score", recording)
    monkeypatch.setattr(topk, "BLOCK", 2 * 8 * 5)  # 2 users x 5 items of width 8
    pieces = pd.concat(topk.batches(trained, k=6, batch_size=2, progress=False))
    assert max(b * c for b, c in shapes) <= 10 and len(shapes) > 40
    pd.testing.assert_frame_equal(whole.reset_index(drop=True), pieces.reset_index(drop=True), rtol=1e-6)


def test_mistakes_are_one_line(trained, tmp_path, capsys):
    assert main(["recommend", str(trained.path), "-o", str(tmp_path / "top.json")]) == 2
    assert main(["recommend", str(trained.path), "-o", str(tmp_path / "x.csv"), "--users", "nobody,u1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: -o ") and ".parquet or .csv" in err[0]
    assert err[1].startswith("error: user 'nobody' is not in dataset")
    assert not list(tmp_path.iterdir())  # nothing half-written
