"""News dataset formats (MIND test folder, xMIND, PENS, EB-NeRD, Adressa) on small fixture files
written here in each format's published layout: column names, separators, headers, compression,
id styles and timestamps as the originals have them."""
import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lego_core.data import formats
from lego_core.data.readers import mind
from lego_core.data.cache import check_dataset
from lego_core.data.io import DataWarning
from lego_core.data.tokenize import split_words, word_tokens
from lego_core.core.errors import DataError
from tests.test_data_mind import BEHAVIORS_DEV, BEHAVIORS_TRAIN, NEWS_DEV, write_mind, write_tsv


def ids_of(dataset, indices):
    return dataset.items["item_id"].to_numpy()[np.asarray(indices, dtype=np.int64)].tolist()


def candidates(dataset, split):
    return dataset.splits[split].to_frame(dataset)["candidates"].tolist()


def one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------- MIND with an unlabelled test folder

TEST_BEHAVIORS = [["1", "U9", "11/22/2019 8:00:00 AM", "N1 N2", "N3 N4 N5"],
                  ["2", "U1", "11/22/2019 9:00:00 AM", "N1", "N6 N7"]]


def test_mind_test_folder_is_counted_and_reported_not_scored(tmp_path):
    root = write_mind(tmp_path / "MINDlarge", "MINDlarge_train", "MINDlarge_dev")
    plain = mind.build_mind(root)
    write_tsv(root / "MINDlarge_test" / "behaviors.tsv", TEST_BEHAVIORS)
    write_tsv(root / "MINDlarge_test" / "news.tsv", NEWS_DEV)
    with pytest.warns(DataWarning, match="2 test impressions have no click labels and cannot be scored"):
        d = formats.get("mind").read(root, name="mind-large", seed=0)
    check_dataset(d)
    assert d.info["unlabelled_test_impressions"] == 2 and d.info["test_candidates"] == 5
    assert "cannot be scored" in d.info["test_note"]
    for split in ("train", "valid", "test"):  # train/dev used exactly as without the test folder
        assert d.splits[split].ids.tolist() == plain.splits[split].ids.tolist()
    assert "U9" not in d.users.tolist()


def test_mind_plain_test_folder_name_and_labels_still_required_in_train(tmp_path):
    root = write_mind(tmp_path / "m")
    write_tsv(root / "test" / "behaviors.tsv", TEST_BEHAVIORS)
    with pytest.warns(DataWarning, match="cannot be scored"):
        assert mind.build_mind(root).info["unlabelled_test_impressions"] == 2
    bad = [r[:4] + ["N3 N4-0"] for r in BEHAVIORS_TRAIN]
    write_tsv(root / "train" / "behaviors.tsv", bad)
    with pytest.raises(DataError, match=r"train/behaviors.tsv line 1: impression candidate 'N3' lacks a '-1'/'-0'"), \
            pytest.warns(DataWarning, match="cannot be scored"):
        mind.build_mind(root)


# ---------------------------------------------------------------- xMIND

XNEWS_TRAIN = [["N1", "Команда «Синие» побеждает", "Долгий матч."], ["N2", "Новый альбом", ""],
               ["N3", "Финал сегодня вечером", "Кто победит?"], ["N4", "Акции падают", "Рынки вниз."],
               ["N5", "Париж весной", "Цветы."]]
XNEWS_DEV = [XNEWS_TRAIN[4], ["N6", "Группа воссоединяется", "Даты тура."], ["N7", "Бегайте больше", "Наука."]]


def write_xmind(root: Path, behaviors: bool = True) -> Path:
    write_tsv(root / "xMINDsmall_train" / "news.tsv", XNEWS_TRAIN)
    write_tsv(root / "xMINDsmall_dev" / "news.tsv", XNEWS_DEV)
    if behaviors:
        write_tsv(root / "xMINDsmall_train" / "behaviors.tsv", BEHAVIORS_TRAIN)
        write_tsv(root / "xMINDsmall_dev" / "behaviors.tsv", BEHAVIORS_DEV)
    return root


def test_xmind_translated_news_with_mind_behaviours_keeps_unicode(tmp_path):
    d = formats.get("xmind").read(write_xmind(tmp_path / "xmind-rus"), name="xmind-rus", seed=0)
    check_dataset(d)
    assert d.name == "xmind-rus" and d.info["reader"] == "xmind"
    assert d.items["item_id"].tolist() == ["N1", "N2", "N3", "N4", "N5", "N6", "N7"]
    assert d.items.loc[0, "title"] == "Команда «Синие» побеждает"
    assert d.items.loc[0, "category"] == ""  # the xMIND files carry no categories
    assert split_words(d.items.loc[0, "title"]) == ["команда", "синие", "побеждает"]
    table = word_tokens(d, fields=["title"], glove=False, cache=False)
    vocab = np.array(table.vocab, dtype=object)
    assert vocab[table.tokens[0][table.mask[0]]].tolist() == ["команда", "синие", "побеждает"]
    assert ids_of(d, d.history(0)) == ["N1", "N2"]
    assert candidates(d, "train") == [["N3", "N4"], ["N1", "N3", "N5"], ["N5", "N4"]]
    assert len(d.splits["valid"]) + len(d.splits["test"]) == 5
    again = formats.get("xmind").read(tmp_path / "xmind-rus", name="xmind-rus", seed=0)
    assert again.info["cache"] == "hit" and again.items.loc[0, "title"] == "Команда «Синие» побеждает"


def test_xmind_borrows_behaviours_and_categories_from_a_mind_root(tmp_path):
    mind_root = write_mind(tmp_path / "MIND", "MINDsmall_train", "MINDsmall_dev")
    root = write_xmind(tmp_path / "xMIND" / "rus", behaviors=False)
    with pytest.raises(DataError, match=r"xMINDsmall_train/behaviors.tsv not found: xMIND ships translated news"):
        formats.get("xmind").read(root)
    d = formats.get("xmind").read(root, name="x", seed=0, mind=str(mind_root))
    assert d.items.loc[0, ["title", "category", "subcategory"]].tolist() == ["Команда «Синие» побеждает", "sports",
                                                                            "football"]
    assert d.splits["train"].labels.tolist() == [1, 0, 0, 1, 0, 0, 1]


def test_xmind_with_mind_columns_detected_by_non_ascii_titles(tmp_path):
    news = [[r[0], "news", "sub", r[1], r[2], "https://x", "[]", "[]"] for r in XNEWS_TRAIN]
    root = write_mind(tmp_path / "m", news_train=news)
    assert formats.detect(root).name == "xmind"
    d = formats.get("xmind").read(root)
    assert d.items.loc[2, "title"] == "Финал сегодня вечером" and d.items.loc[2, "category"] == "news"


# ---------------------------------------------------------------- PENS

PENS_NEWS = [["News ID", "Category", "Topic", "Headline", "News body", "Title entity", "Entity content"],
             ["N10000", "sports", "soccer", "Predicting Atlanta United's lineup", "Only FIVE internationals.", "{}",
              "{}"],
             ["N10001", "news", "newsus", "Storm hits coast", "Winds of 100 mph.", "{}", "{}"],
             ["N10002", "travel", "travelnews", "Best beaches", "Sand and sun.", "{}", "{}"],
             ["N10003", "finance", "markets", "Stocks rally", "Dow up.", "{}", "{}"],
             ["N10004", "sports", "nba", "Finals tonight", "Game 7.", "{}", "{}"]]
PENS_LOG_HEADER = ["UserID", "ClicknewsID", "dwelltime", "exposure_time", "pos", "neg", "start", "end",
                   "dwelltime_pos"]
PENS_TRAIN = [PENS_LOG_HEADER,
              ["U335175", "N10000 N10001", "20 60", "6/19/2019 5:10:01 AM#TAB#6/19/2019 5:11:12 AM", "N10002",
               "N10003 N10004", "7/3/2019 6:36:08 AM", "7/3/2019 7:00:44 AM", "58"],
              ["U146053", "N10004", "31", "6/20/2019 1:00:00 PM", "N10000 N10003", "N10001",
               "7/3/2019 1:00:00 PM", "7/3/2019 1:20:00 PM", "12 40"]]
PENS_VALID = [PENS_LOG_HEADER,
              ["U335175", "N10000 N10001 N10002", "20 60 58", "6/19/2019 5:10:01 AM", "N10004", "N10003",
               "7/4/2019 8:00:00 AM", "7/4/2019 8:10:00 AM", "9"],
              ["U700001", "", "", "", "N10001", "N10002 N10000", "7/4/2019 9:00:00 AM", "7/4/2019 9:05:00 AM", "5"],
              ["U146053", "N10004", "31", "6/20/2019 1:00:00 PM", "N10003", "N10002", "7/4/2019 10:00:00 PM",
               "7/4/2019 10:30:00 PM", "3"],
              ["U700002", "N10003", "5", "7/1/2019 3:00:00 AM", "N10000", "N10004", "7/4/2019 11:00:00 PM",
               "7/4/2019 11:30:00 PM", "4"]]


def write_pens(root: Path, news=PENS_NEWS, train=PENS_TRAIN, valid=PENS_VALID) -> Path:
    write_tsv(root / "news.tsv", news)
    write_tsv(root / "train.tsv", train)
    write_tsv(root / "valid.tsv", valid)
    return root


def test_pens_pos_neg_labels_histories_and_splits(tmp_path):
    d = formats.get("pens").read(write_pens(tmp_path / "PENS"), name="pens", seed=0)
    check_dataset(d)
    assert d.items.columns.tolist() == ["item_id", "category", "topic", "title", "body"]
    assert d.items.loc[0, "title"] == "Predicting Atlanta United's lineup" and d.text_fields == ["title"]
    assert d.users.tolist() == ["U335175", "U146053", "U700001", "U700002"]
    # history = ClicknewsID of the user's first row (train first), oldest first
    assert ids_of(d, d.history(0)) == ["N10000", "N10001"] and len(d.history(2)) == 0
    train = d.splits["train"]
    assert train.ids.tolist() == [0, 1]
    assert candidates(d, "train") == [["N10002", "N10003", "N10004"], ["N10000", "N10003", "N10001"]]
    assert train.labels.tolist() == [1, 0, 0, 1, 1, 0]  # pos = 1 then neg = 0
    assert train.times[0] == int(datetime(2019, 7, 3, 6, 36, 8, tzinfo=timezone.utc).timestamp())
    assert train.times[1] - train.times[0] == 6 * 3600 + 23 * 60 + 52  # PM handled
    valid, test = d.splits["valid"], d.splits["test"]
    assert len(valid) == 2 and len(test) == 2
    assert sorted(valid.ids.tolist() + test.ids.tolist()) == [2, 3, 4, 5]
    rng = np.random.default_rng(0).permutation(4)[:2]
    assert sorted(valid.ids.tolist()) == sorted((rng + 2).tolist())
    lengths = np.diff(d.seq_offsets)
    for imps in d.splits.values():
        assert np.array_equal(imps.history_end, lengths[imps.users])


def test_pens_unknown_ids_are_dropped_with_counts_and_a_warning(tmp_path):
    train = PENS_TRAIN[:2] + [PENS_TRAIN[2][:5] + ["N10001 N77777"] + PENS_TRAIN[2][6:]]
    valid = PENS_VALID[:3] + [PENS_VALID[3][:4] + ["N88888"] + ["N99999"] + PENS_VALID[3][6:]] + PENS_VALID[4:]
    with pytest.warns(DataWarning) as record:
        d = formats.get("pens").read(write_pens(tmp_path / "p", train=train, valid=valid))
    messages = [str(w.message) for w in record]
    assert any("train.tsv: dropped 1 pos/neg ids naming unknown news and 0 impressions" in m for m in messages)
    assert any("valid.tsv: dropped 2 pos/neg ids naming unknown news and 1 impressions" in m for m in messages)
    assert d.info["train_unknown_candidates_dropped"] == 1 and d.info["valid_file_impressions_dropped"] == 1
    assert candidates(d, "train")[1] == ["N10000", "N10003", "N10001"]
    assert len(d.splits["valid"]) + len(d.splits["test"]) == 3


# ---------------------------------------------------------------- EB-NeRD

def ts(text):
    return datetime.fromisoformat(text)


def write_ebnerd(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "article_id": pa.array([3037230, 3044020, 3057622, 3073151, 9778745], pa.int32()),
        "title": ["Ishockey-spiller: Jeg troede jeg skulle dø", "Prins Harry tvunget til dna-test",
                  "Rådden kørsel på blå plader", "Mærsk-arvinger i livsfare", "Zlatans paradis"],
        "subtitle": ["ISHOCKEY: ...", "Hoffet tvang ...", "Kan ikke straffes ...", "FANGET I FLODBØLGEN ...", ""],
        "body": ["a", "b", "c", "d", "e"],
        "category_str": ["sport", "underholdning", "nyheder", "nyheder", "sport"],
        "subcategory": pa.array([[196, 271], [], [142], None, [196]], pa.list_(pa.int16())),
        "premium": [False, False, True, False, False],
        "published_time": pa.array([ts("2023-05-01 03:56:56")] * 5, pa.timestamp("us")),
    }), root / "articles.parquet")
    beh_type = {"impression_id": pa.uint32(), "user_id": pa.uint32(), "article_ids_inview": pa.list_(pa.int32()),
                "article_ids_clicked": pa.list_(pa.int32())}

    def behaviors(folder, rows):
        cols = ["impression_id", "article_id", "impression_time", "read_time", "scroll_percentage",
                "article_ids_inview", "article_ids_clicked", "user_id", "session_id"]
        data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
        table = pa.table({c: pa.array(v, beh_type.get(c) or (pa.timestamp("us") if c == "impression_time" else None))
                          for c, v in data.items()})
        (root / folder).mkdir(exist_ok=True)
        pq.write_table(table, root / folder / "behaviors.parquet")

    behaviors("train", [
        (48401, None, ts("2023-05-21 21:06:50"), 21.0, None, [3037230, 3044020, 3057622], [3044020], 13538, 21),
        (152513, 9778745, ts("2023-05-24 07:31:26"), 30.0, 100.0, [3073151, 3057622], [3057622], 58608, 298),
        (155390, None, ts("2023-05-24 07:30:33"), 45.0, None, [3037230, 3073151, 9778745], [9778745, 3037230],
         13538, 401)])
    behaviors("validation", [
        (48401, None, ts("2023-05-28 08:00:00"), 10.0, None, [3044020, 9778745], [9778745], 13538, 500),
        (900002, None, ts("2023-05-28 09:00:00"), 10.0, None, [3037230, 3057622], [3037230], 77777, 501),
        (900003, None, ts("2023-05-29 09:00:00"), 10.0, None, [3073151, 3044020, 3037230], [3044020], 58608, 502),
        (900004, None, ts("2023-05-29 10:00:00"), 10.0, None, [3037230, 3057622], [3057622], 13538, 503)])

    def history(folder, rows):
        pq.write_table(pa.table({
            "user_id": pa.array([r[0] for r in rows], pa.uint32()),
            "impression_time_fixed": pa.array([[ts(t) for t in r[1]] for r in rows], pa.list_(pa.timestamp("us"))),
            "scroll_percentage_fixed": pa.array([[None] * len(r[1]) for r in rows], pa.list_(pa.float32())),
            "article_id_fixed": pa.array([r[2] for r in rows], pa.list_(pa.int32())),
            "read_time_fixed": pa.array([[1.0] * len(r[1]) for r in rows], pa.list_(pa.float32()))}),
            root / folder / "history.parquet")

    history("train", [(13538, ["2023-04-27 10:17:43", "2023-04-27 10:18:00"], [3037230, 3057622]),
                      (58608, ["2023-04-30 18:48:09"], [3073151])])
    history("validation", [(13538, ["2023-04-27 10:18:00", "2023-05-21 21:07:00"], [3057622, 3044020]),
                           (58608, ["2023-05-24 07:32:00"], [3057622]),
                           (99999, ["2023-05-24 07:32:00"], [3057622])])
    return root


def test_ebnerd_inview_clicked_labels_histories_and_splits(tmp_path):
    d = formats.get("ebnerd").read(write_ebnerd(tmp_path / "ebnerd_demo"), name="ebnerd", seed=0)
    check_dataset(d)
    assert d.items["item_id"].tolist() == ["3037230", "3044020", "3057622", "3073151", "9778745"]
    assert d.items.loc[2, "title"] == "Rådden kørsel på blå plader" and d.items.loc[0, "category"] == "sport"
    assert d.items["subcategory"].tolist() == ["196 271", "", "142", "", "196"]
    assert d.text_fields == ["title", "subtitle"]
    assert d.users.tolist() == ["13538", "58608", "77777"]
    # sequence = both history rows merged in time order, the repeated (time, article) click once
    assert ids_of(d, d.history(0)) == ["3037230", "3057622", "3044020"]
    assert ids_of(d, d.history(1)) == ["3073151", "3057622"] and len(d.history(2)) == 0
    train = d.splits["train"]
    assert train.ids.tolist() == [48401, 152513, 155390]
    assert candidates(d, "train") == [["3037230", "3044020", "3057622"], ["3073151", "3057622"],
                                      ["3037230", "3073151", "9778745"]]
    assert train.labels.tolist() == [0, 1, 0, 0, 1, 1, 0, 1]
    assert train.history_end.tolist() == [2, 1, 2]  # train impressions see the train history only
    assert train.times[0] == int(datetime(2023, 5, 21, 21, 6, 50, tzinfo=timezone.utc).timestamp())
    dev_ids = sorted(d.splits["valid"].ids.tolist() + d.splits["test"].ids.tolist())
    assert d.info["validation_id_offset"] == 155390 - 48401 + 1  # 48401 appears in both folders
    assert dev_ids == [155391, 900002 + 106990, 900003 + 106990, 900004 + 106990]
    assert len(d.splits["valid"]) == 2
    dev = {int(i): int(e) for s in ("valid", "test") for i, e in zip(d.splits[s].ids, d.splits[s].history_end)}
    assert dev == {155391: 3, 1006992: 0, 1006993: 2, 1006994: 3}
    assert d.info["validation_history_users_without_impressions"] == 1


# ---------------------------------------------------------------- Adressa

def event(event_id, user, t, article=None, title=None, category=None, **extra):
    out = {"eventId": event_id, "city": "trondheim", "activeTime": 8, "url": "http://adressa.no", "time": t,
           "userId": user, "sessionStart": False, "sessionStop": False, "deviceType": "Mobile", "os": "Android"}
    if article:
        out.update({"id": article, "title": title, "category1": category, "publishtime": "2016-12-31T17:13:57.000Z",
                    "url": f"http://adressa.no/{article}.ece", "keywords": "utenriks,innenriks",
                    "author": ["camilla kilnes"], "profile": [{"item": "0", "groups": []}]})
    out.update(extra)
    return out


A1, A2, A3, A4 = ("9f3999bd1a1a8d67bcb073ad54840f15cb30f014", "2607fc7d7b4c0ede839a5ff6d499fa428237443e",
                  "a" * 40, "b" * 40)
DAY1 = [event(1, "cx:u1", 1483225202, A1, "Se lesernes nyttårsbilder", "nyheter|trondheim"),
        event(2, "cx:u1", 1483225300),  # the front page: no article id, not a click
        event(3, "cx:u2", 1483225400, A2, "- Det blir fyrverkeri", "nyheter"),
        event(4, "cx:u1", 1483225500, A2, "- Det blir fyrverkeri", "nyheter")]
DAY2 = [event(5, "cx:u2", 1483311600, A3, "Rosenborg vant", "sport|fotball"),
        event(6, "cx:u1", 1483311700, A3, None, None),
        event(7, "cx:u2", 1483311800, A4, "Været i helgen", "nyheter|trondheim"),
        event(8, "cx:u1", 1483311900, A4, "Været i helgen", "nyheter|trondheim")]


def lines(events):
    return "".join(json.dumps(e) + "\n" for e in events).encode()


def write_adressa(root: Path) -> Path:
    folder = root / "one_week"
    folder.mkdir(parents=True)
    (folder / "20170101").write_bytes(lines(DAY1))
    (folder / "20170102.gz").write_bytes(gzip.compress(lines(DAY2)))
    return root


def test_adressa_article_events_are_clicks_with_leave_last_out(tmp_path):
    d = formats.get("adressa").read(write_adressa(tmp_path / "adressa"), name="adressa", negatives=1, seed=0)
    check_dataset(d)
    assert d.info["events"] == 8 and d.info["non_article_events"] == 1 and d.info["files"] == 2
    assert d.items["item_id"].tolist() == sorted([A1, A2, A3, A4])
    by_id = d.items.set_index("item_id")
    assert by_id.loc[A1, ["title", "category", "subcategory"]].tolist() == ["Se lesernes nyttårsbilder", "nyheter",
                                                                           "trondheim"]
    assert by_id.loc[A3, "title"] == "Rosenborg vant"  # the first event that has a title
    assert d.users.tolist() == ["cx:u1", "cx:u2"]
    assert ids_of(d, d.history(0)) == [A1, A2, A3, A4] and ids_of(d, d.history(1)) == [A2, A3, A4]
    test = d.splits["test"]
    assert [ids_of(d, test.items[test.offsets[i]:test.offsets[i + 1]][test.labels[test.offsets[i]:
                                                                                   test.offsets[i + 1]] == 1])
            for i in range(2)] == [[A4], [A4]]
    assert test.history_end.tolist() == [3, 2] and d.splits["valid"].history_end.tolist() == [2, 1]
    assert len(d.splits["train"]) == 1  # u1's second click (u2's first has no history)
    assert d.info["protocol"] == "leave-last-out" and d.info["negatives"] == 1


# ---------------------------------------------------------------- detection

def test_detection_picks_each_format_and_none_for_a_random_folder(tmp_path):
    assert formats.detect(write_mind(tmp_path / "mind")).name == "mind"
    assert formats.detect(write_xmind(tmp_path / "xmind")).name == "xmind"
    assert formats.detect(write_pens(tmp_path / "pens")).name == "pens"
    assert formats.detect(write_ebnerd(tmp_path / "ebnerd")).name == "ebnerd"
    assert formats.detect(write_adressa(tmp_path / "adressa")).name == "adressa"
    assert formats.detect(tmp_path / "adressa" / "one_week" / "20170101").name == "adressa"
    other = tmp_path / "random"
    (other / "sub").mkdir(parents=True)
    (other / "notes.txt").write_text("hello\n")
    (other / "sub" / "data.tsv").write_text("a\tb\n")
    (other / "news.tsv").write_text("N1\tx\n")
    with pytest.raises(DataError, match="is in no known dataset format"):
        formats.detect(other)
    assert {f.name for f in formats.all_formats()} >= {"mind", "xmind", "pens", "ebnerd", "adressa"}


# ---------------------------------------------------------------- bad input

def _pens_case(tmp_path, case):
    root = write_pens(tmp_path / "p")
    if case == "missing file":
        (root / "valid.tsv").unlink()
    elif case == "missing column":
        write_tsv(root / "train.tsv", [[c for c in r if c != "x"] for r in
                                       [[h if h != "neg" else "negative" for h in PENS_TRAIN[0]]] + PENS_TRAIN[1:]])
    elif case == "short row":
        write_tsv(root / "train.tsv", PENS_TRAIN[:2] + [PENS_TRAIN[2][:4]])
    elif case == "empty":
        (root / "news.tsv").write_bytes(b"")
    elif case == "bad time":
        write_tsv(root / "valid.tsv", PENS_VALID[:2] + [PENS_VALID[2][:6] + ["yesterday"] + PENS_VALID[2][7:]])
    elif case == "unknown ids":
        write_tsv(root / "train.tsv", [PENS_TRAIN[0]] + [r[:4] + ["N99", "N98"] + r[6:] for r in PENS_TRAIN[1:]])
    elif case == "duplicate news":
        write_tsv(root / "news.tsv", PENS_NEWS + [PENS_NEWS[1]])
    return formats.get("pens").read, root


def _ebnerd_case(tmp_path, case):
    root = write_ebnerd(tmp_path / "e")
    if case == "not parquet":
        (root / "train" / "history.parquet").write_text("user_id,article_id_fixed\n1,2\n")
    elif case == "missing column":
        table = pq.read_table(root / "validation" / "behaviors.parquet").drop_columns(["article_ids_clicked"])
        pq.write_table(table, root / "validation" / "behaviors.parquet")
    elif case == "missing file":
        (root / "articles.parquet").unlink()
    elif case == "empty":
        (root / "train" / "behaviors.parquet").write_bytes(b"")
    elif case == "unknown ids":
        table = pq.read_table(root / "articles.parquet")
        pq.write_table(table.set_column(0, "article_id", pa.array([1, 2, 3, 4, 5], pa.int32())),
                       root / "articles.parquet")
    elif case == "not a list":
        table = pq.read_table(root / "train" / "behaviors.parquet")
        i = table.column_names.index("article_ids_inview")
        pq.write_table(table.set_column(i, "article_ids_inview", pa.array(["1 2", "3", "4"])),
                       root / "train" / "behaviors.parquet")
    return formats.get("ebnerd").read, root


def _adressa_case(tmp_path, case):
    root = write_adressa(tmp_path / "a")
    day2 = root / "one_week" / "20170102.gz"
    if case == "not gzip":
        day2.write_bytes(lines(DAY2))
    elif case == "bad json":
        day2.write_bytes(gzip.compress(lines(DAY2[:2]) + b"{\"eventId\": 9, \"userId\": \n" + lines(DAY2[2:])))
    elif case == "wrong type":
        day2.write_bytes(gzip.compress(lines(DAY2[:1] + [dict(DAY2[1], time="noon")] + DAY2[2:])))
    elif case == "empty":
        (root / "one_week" / "20170101").write_bytes(b"")
    elif case == "no user":
        day2.write_bytes(gzip.compress(lines(DAY2[:2] + [{k: v for k, v in DAY2[2].items() if k != "userId"}])))
    return formats.get("adressa").read, root


def _xmind_case(tmp_path, case):
    root = write_xmind(tmp_path / "x")
    if case == "short row":
        write_tsv(root / "xMINDsmall_dev" / "news.tsv", XNEWS_DEV + [["N8"]])
    elif case == "missing news":
        (root / "xMINDsmall_dev" / "news.tsv").unlink()
    elif case == "not utf-8":
        write_tsv(root / "xMINDsmall_train" / "news.tsv", XNEWS_TRAIN, encoding="cp1251")
    return formats.get("xmind").read, root


BAD = [
    (_pens_case, "missing file", r"p/valid.tsv not found: a PENS folder holds"),
    (_pens_case, "missing column", r"p/train.tsv lacks column\(s\) \['neg'\]"),
    (_pens_case, "short row", r"p/train.tsv line 3 has fewer tab-separated fields than its header \(9\)"),
    (_pens_case, "empty", r"p/news.tsv is empty"),
    (_pens_case, "bad time", r"p/valid.tsv line 3: start 'yesterday' is not a time"),
    (_pens_case, "unknown ids", r"p/train.tsv: no row names a known news id in columns 'pos'/'neg'"),
    (_pens_case, "duplicate news", r"p/news.tsv: duplicate id 'N10000' in column 'News ID' \(lines \[2, 7\]\)"),
    (_ebnerd_case, "not parquet", r"e/train/history.parquet is not a readable Parquet file"),
    (_ebnerd_case, "missing column", r"e/validation/behaviors.parquet lacks column\(s\) \['article_ids_clicked'\]"),
    (_ebnerd_case, "missing file", r"e/articles.parquet not found: an EB-NeRD folder holds"),
    (_ebnerd_case, "empty", r"e/train/behaviors.parquet is empty"),
    (_ebnerd_case, "unknown ids", r"e/train/behaviors.parquet: no impression shows a known article"),
    (_ebnerd_case, "not a list", r"e/train/behaviors.parquet: column 'article_ids_inview' must hold lists"),
    (_adressa_case, "not gzip", r"one_week/20170102.gz is not valid gzip data"),
    (_adressa_case, "bad json", r"one_week/20170102.gz line 3 is not valid JSON"),
    (_adressa_case, "wrong type", r"one_week/20170102.gz line 2: key 'time' holds 'noon', expected int"),
    (_adressa_case, "empty", r"one_week/20170101 is empty"),
    (_adressa_case, "no user", r"one_week/20170102.gz: the article event of line 3 has no 'userId'"),
    (_xmind_case, "short row", r"xMINDsmall_dev/news.tsv line 4 has fewer than 2 tab-separated fields"),
    (_xmind_case, "missing news", r"xMINDsmall_dev/news.tsv not found"),
    (_xmind_case, "not utf-8", r"xMINDsmall_train/news.tsv is not valid UTF-8 \(line 1\)"),
]


@pytest.mark.parametrize("make, case, match", BAD, ids=[f"{m.__name__[1:-5]}-{c}" for m, c, _ in BAD])
def test_bad_input_is_one_line_naming_file_and_fix(tmp_path, make, case, match):
    read, root = make(tmp_path, case)
    with pytest.raises(DataError, match=match) as exc:
        read(root)
    one_line(exc)
    assert not list((tmp_path / "lego-cache").glob("datasets/.processed/*"))  # nothing half-written
