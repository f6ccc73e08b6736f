"""Readers of review/rating formats: MovieLens 1M/10M/CSV, Goodreads, Amazon 2014/2018/2023, RecBole
atomic files and the GroupLens ml-100k folder. Each fixture is written in the original layout
(separators, encodings, gzip, key names, timestamp styles) and the tests state what it reads as."""
import gzip
import importlib
import json
import os
from pathlib import Path

import pytest

from lego_core.data import formats
from lego_core.data.readers import amazon
from lego_core.data.readers import goodreads
from lego_core.data.readers import movielens
from lego_core.data.readers import movielens_variants
from lego_core.data.readers import recbole_atomic
from lego_core.data.cache import check_dataset
from lego_core.data.io import DataWarning
from lego_core.core.errors import DataError
from lego_core.core.paths import cache_dir

MODULES = ("movielens", "movielens_variants", "goodreads", "amazon", "recbole_atomic")


def detected(path: Path) -> str:
    """The name of the registered format `formats.detect` picks for `path` ("" when none)."""
    try:
        return formats.detect(Path(path)).name
    except DataError as exc:
        assert "is in no known dataset format" in str(exc)
        return ""


def sequences(ds) -> dict[str, list[str]]:
    ids = ds.items["item_id"].to_numpy()
    return {u: ids[ds.history(i)].tolist() for i, u in enumerate(ds.users)}


def positives(ds, split: str) -> dict[str, str]:
    imps = ds.splits[split]
    ids = ds.items["item_id"].to_numpy()
    return {ds.users[u]: ids[imps.items[imps.offsets[m]:imps.offsets[m + 1]][imps.labels[imps.offsets[m]:
            imps.offsets[m + 1]] == 1][0]] for m, u in enumerate(imps.users)}


def item(ds, item_id: str) -> dict:
    return ds.items.set_index("item_id").loc[item_id].to_dict()


def write_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return path


def jsonl(records: list[dict]) -> list[str]:
    return [json.dumps(r) for r in records]


def cached() -> list[str]:
    """Entries of the processed-dataset cache (a failed read must add none, not even a partial one)."""
    folder = cache_dir("datasets", ".processed")
    return sorted(os.listdir(folder)) if folder.exists() else []


# ---- MovieLens 1M / 10M / CSV ------------------------------------------------------------------------------

ML1M_MOVIES = ["1::Toy Story (1995)::Animation|Children's|Comedy", "2::Misérables, Les (1995)::Drama|Musical",
               "3::Café au Lait (1993)::Comedy", "4::Heat (1995)::Action|Crime|Thriller"]
# user 1 rates 1, 3, 2, 4 in time order; user 2 rates 4, 1, 2; user 10 has two ratings (dropped)
ML1M_RATINGS = ["1::1::5::978300100", "1::2::3::978300300", "1::3::4::978300200", "1::4::1::978300400",
                "2::4::5::978200050", "2::1::4::978200060", "2::2::2::978200070",
                "10::1::3::978000000", "10::3::3::978000001"]


def write_ml1m(folder: Path, movies: list[str] = ML1M_MOVIES, ratings: list[str] = ML1M_RATINGS) -> Path:
    """An ml-1m folder: movies.dat (latin-1), ratings.dat and users.dat ('::'-separated)."""
    folder.mkdir(parents=True)
    (folder / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    (folder / "ratings.dat").write_text("\n".join(ratings) + "\n")
    users = sorted({r.split("::")[0] for r in ratings}, key=int)
    (folder / "users.dat").write_text("".join(f"{u}::F::25::3::55117\n" for u in users))
    return folder


@pytest.fixture
def ml1m(tmp_path):
    return write_ml1m(tmp_path / "ml-1m")


def test_ml1m_reads_latin1_titles_and_splits_leave_last_out_by_timestamp(ml1m):
    with pytest.warns(DataWarning, match="1 users with fewer than 3"):
        ds = movielens_variants.load_ml1m(ml1m, negatives=2, seed=1)
    check_dataset(ds)
    assert (ds.name, ds.num_items, ds.users.tolist()) == ("ml-1m", 4, ["1", "2"])
    assert item(ds, "2") == {"title": "Misérables, Les", "year": "1995", "genres": "Drama Musical",
                             "category": "Drama"}
    assert item(ds, "3")["title"] == "Café au Lait"
    assert ds.text_fields == ["title", "genres"] and ds.category_field == "category"
    assert sequences(ds) == {"1": ["1", "3", "2", "4"], "2": ["4", "1", "2"]}
    assert positives(ds, "test") == {"1": "4", "2": "2"} and positives(ds, "valid") == {"1": "2", "2": "1"}
    assert ds.splits["test"].history_end.tolist() == [3, 2]
    train = ds.splits["train"]  # user 1's second click is the only one with history and 2 later clicks
    assert (train.users.tolist(), train.items.tolist(), train.history_end.tolist()) == ([0], [2], [1])
    assert ds.info["short_users_dropped"] == 1 and ds.info["negatives"] == 2
    assert movielens_variants.load_ml1m(ml1m / "ratings.dat", negatives=2, seed=1).info["cache"] == "hit"


def test_ml10m_reads_half_stars_and_tags(tmp_path):
    folder = tmp_path / "ml-10M100K"
    folder.mkdir()
    (folder / "movies.dat").write_text("1::Toy Story (1995)::Adventure|Animation\n2::Jumanji (1995)::Adventure\n"
                                       "3::Babylon 5 (1994-1998)::(no genres listed)\n")
    (folder / "ratings.dat").write_text("5::1::4.5::838985046\n5::2::0.5::838983525\n5::3::3::838983392\n")
    (folder / "tags.dat").write_text("15::1::pixar::1138537770\n20::1::Pixar::1139000000\n20::1::toys::1139000001\n")
    assert detected(folder) == "ml-10m"
    ds = movielens_variants.load_ml10m(folder)
    assert sequences(ds) == {"5": ["3", "2", "1"]}
    assert item(ds, "1")["tags"] == "pixar, toys" and item(ds, "2")["tags"] == ""
    assert item(ds, "3") == {"title": "Babylon 5", "year": "1994", "genres": "unknown", "category": "unknown",
                             "tags": ""}
    assert ds.text_fields == ["title", "genres", "tags"]


def write_mlcsv(folder: Path, movies: str | None = None, ratings: str | None = None) -> Path:
    """An ml-latest-small style folder (movies.csv, ratings.csv, tags.csv, links.csv); the default
    rows quote commas and quotes."""
    folder.mkdir(parents=True)
    if movies is not None:
        (folder / "movies.csv").write_text(movies)
        (folder / "ratings.csv").write_text(ratings)
        return folder
    (folder / "movies.csv").write_text('movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
                                       '11,"American President, The (1995)",Comedy|Drama|Romance\n'
                                       '21,"Dog, the Cat and the ""Mouse"", The",(no genres listed)\n')
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,11,4.0,964982703\n1,1,4.0,964981247\n"
                                        "1,21,2.5,964982224\n2,1,5.0,1445714835\n2,11,3.0,1445714830\n"
                                        "2,21,1.0,1445714840\n")
    (folder / "tags.csv").write_text('userId,movieId,tag,timestamp\n2,11,"politics, romance",1445714994\n')
    (folder / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0114709,862\n")
    return folder


@pytest.fixture
def mlcsv(tmp_path):
    return write_mlcsv(tmp_path / "ml-latest-small")


def test_ml_csv_reads_quoted_commas_and_tags(mlcsv):
    ds = movielens_variants.load_csv(mlcsv, name="small")
    check_dataset(ds)
    assert ds.name == "small" and ds.num_items == 3
    assert item(ds, "11") == {"title": "American President, The", "year": "1995", "genres": "Comedy Drama Romance",
                              "category": "Comedy", "tags": "politics, romance"}
    assert item(ds, "21")["title"] == 'Dog, the Cat and the "Mouse", The' and item(ds, "21")["year"] == ""
    assert sequences(ds) == {"1": ["1", "21", "11"], "2": ["11", "1", "21"]}
    assert positives(ds, "test") == {"1": "11", "2": "21"}


def test_grouplens_100k_folder_is_a_registered_format(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    flags = "|".join(["0"] * 19)
    (folder / "u.item").write_bytes("1|Toy Story (1995)|01-Jan-1995||http://x|{}\n2|Café (1996)|01-Jan-1996||u|{}\n"
                                    "3|Heat (1995)|01-Jan-1995||u|{}\n".format(flags, flags, flags).encode("latin-1"))
    (folder / "u.data").write_text("7\t1\t3\t881250949\n7\t2\t5\t881250950\n7\t3\t1\t881250951\n")
    assert detected(folder) == "movielens-100k" and detected(folder / "u.data") == "movielens-100k"
    fmt = movielens.FORMATS[0]
    ds = fmt.read(folder, name="my-100k", **fmt.options)
    assert ds.name == "my-100k" and sequences(ds) == {"7": ["1", "2", "3"]} and item(ds, "2")["title"] == "Café"


# ---- Goodreads -----------------------------------------------------------------------------------------------

def book(book_id: str, title: str, shelves: list[str], **extra) -> dict:
    return {"isbn": "", "text_reviews_count": "3", "series": [], "language_code": "eng",
            "popular_shelves": [{"count": str(100 - i), "name": s} for i, s in enumerate(shelves)],
            "average_rating": "4.09", "similar_books": [], "description": f"About {title}.",
            "authors": [{"author_id": "18540", "role": ""}, {"author_id": "404", "role": "Illustrator"}],
            "publication_year": "1982", "book_id": book_id,
            "ratings_count": "15716", "work_id": "372536", "title": title, "title_without_series": title, **extra}


def interaction(user: str, book_id: str, date: str, is_read: bool = True, rating: int = 4) -> dict:
    return {"user_id": user, "book_id": book_id, "review_id": f"r{user}{book_id}", "is_read": is_read,
            "rating": rating, "review_text_incomplete": "", "date_added": date, "date_updated": date,
            "read_at": "", "started_at": ""}


@pytest.fixture
def goodreads_folder(tmp_path):
    folder = tmp_path / "goodreads"
    folder.mkdir()
    write_gz(folder / "goodreads_books_poetry.json.gz", jsonl([
        book("402128", "Old Possum's Book of Practical Cats", ["to-read", "poetry", "classics", "cats"]),
        book("1", "Leaves of Grass", ["currently-reading", "poetry"]),
        book("2", "Ariel", ["favorites", "poetry", "confessional"],
             authors=[{"author_id": "21578", "role": ""}, {"author_id": "18540", "role": "Foreword"}]),
        book("3", "Unread Book", ["to-read"])]))
    user = "80d52f5e70f023bd0098ab96599a3530"
    write_gz(folder / "goodreads_interactions_poetry.json.gz", jsonl([
        interaction(user, "402128", "Fri Apr 19 08:15:15 -0700 2013"),
        interaction(user, "1", "Tue Oct 17 04:38:53 -0700 2017"),
        interaction(user, "2", "Fri Apr 19 08:15:14 -0700 2013", rating=0),
        interaction(user, "3", "Wed Jan 01 00:00:00 +0000 2020", is_read=False, rating=0)]))
    return folder


def test_goodreads_reads_is_read_interactions_by_date_added(goodreads_folder):
    assert detected(goodreads_folder) == "goodreads"
    ds = goodreads.load(goodreads_folder, negatives=5)
    check_dataset(ds)
    assert ds.name == "goodreads_poetry"
    assert sequences(ds) == {"80d52f5e70f023bd0098ab96599a3530": ["2", "402128", "1"]}  # 08:15:14 before :15
    assert item(ds, "402128") == {"title": "Old Possum's Book of Practical Cats", "description":
                                  "About Old Possum's Book of Practical Cats.", "shelves": "poetry classics cats",
                                  "year": "1982", "category": "poetry"}
    assert "3" not in ds.items["item_id"].tolist()  # shelved to-read, never read: no click, no item
    assert ds.info["unread_interactions_dropped"] == 1 and ds.info["books_without_reads_dropped"] == 1
    assert ds.splits["test"].times.tolist() == [1508240333]  # Tue Oct 17 04:38:53 -0700 2017 in UTC


def test_goodreads_interactions_file_finds_its_books_file_and_author_names(goodreads_folder):
    inter = goodreads_folder / "goodreads_interactions_poetry.json.gz"
    assert detected(inter) == "goodreads" and goodreads.locate(inter)[0].name == "goodreads_books_poetry.json.gz"
    write_gz(goodreads_folder / "goodreads_book_authors.json.gz", jsonl([
        {"average_rating": "4.02", "author_id": "18540", "text_reviews_count": "7", "name": "T.S. Eliot",
         "ratings_count": "9"}, {"author_id": "21578", "name": "Edward Gorey"}]))
    ds = goodreads.load(inter)
    assert ds.text_fields == ["title", "description", "shelves", "authors"]
    assert ds.items["authors"].tolist() == ["T.S. Eliot", "T.S. Eliot", "Edward Gorey, T.S. Eliot"]  # 404: unknown


# ---- Amazon 2014 / 2018 / 2023 -----------------------------------------------------------------------------

def review(user: str, asin: str, t: int, **extra) -> dict:
    return {"reviewerID": user, "asin": asin, "reviewerName": "J. Doe", "helpful": [0, 0], "reviewText": "Fine.",
            "overall": 5.0, "summary": "Good", "unixReviewTime": t, "reviewTime": "01 1, 2014", **extra}


def test_amazon_2014_meta_as_python_literals(tmp_path):
    folder = tmp_path / "amazon2014"
    folder.mkdir()
    write_gz(folder / "reviews_Toys_and_Games_5.json.gz", jsonl([
        review("A1", "0000031852", 1400000300), review("A1", "B001", 1400000100), review("A1", "B002", 1400000200),
        review("A1", "B404", 1400000400)]))
    write_gz(folder / "meta_Toys_and_Games.json.gz", [repr(m) for m in [
        {"asin": "0000031852", "title": "Girls Ballet Tutu Zebra Hot Pink", "price": 3.17,
         "salesRank": {"Toys & Games": 211836}, "categories": [["Toys & Games", "Dress Up", "Tutus"], ["Sports"]]},
        {"asin": "B001", "description": "A \"wooden\" train, 'classic'.", "categories": [["Toys & Games"]]},
        {"asin": "B002", "title": "Puzzle", "brand": "Ravensburger", "categories": [["Toys & Games", "Puzzles"]]},
        {"asin": "B999", "title": "Never reviewed", "categories": [["Toys & Games"]]}]])
    assert detected(folder) == "amazon" and detected(folder / "reviews_Toys_and_Games_5.json.gz") == "amazon"
    with pytest.warns(DataWarning, match="dropped 1 interactions naming unknown items"):
        ds = amazon.load(folder)
    check_dataset(ds)
    assert (ds.name, ds.info["release"], ds.info["unknown_items_dropped"]) == ("amazon-Toys_and_Games", 2014, 1)
    assert ds.items["item_id"].tolist() == ["0000031852", "B001", "B002"]  # B999 was never reviewed
    assert item(ds, "0000031852") == {"title": "Girls Ballet Tutu Zebra Hot Pink", "categories":
                                      "Toys & Games > Dress Up > Tutus", "description": "", "brand": "",
                                      "category": "Dress Up"}
    assert item(ds, "B001")["description"] == "A \"wooden\" train, 'classic'." and item(ds, "B001")["title"] == ""
    assert sequences(ds) == {"A1": ["B001", "B002", "0000031852"]}


def write_amazon_2018(folder: Path, reviews: list[dict], meta: list[dict]) -> Path:
    """An Amazon 2018 folder: Luxury_Beauty_5.json.gz reviews + meta_Luxury_Beauty.json.gz."""
    folder.mkdir(parents=True)
    write_gz(folder / "Luxury_Beauty_5.json.gz", jsonl(reviews))
    write_gz(folder / "meta_Luxury_Beauty.json.gz", jsonl(meta))
    return folder


def test_amazon_2018_lists_and_repeated_meta_rows(tmp_path):
    reviews = ([
        review("U1", "B01", 1500000000, verified=True, vote="1,234", style={"Size:": " 3 oz"}),
        review("U1", "B02", 1500000002), review("U1", "B03", 1500000001), review("U2", "B01", 1500000000), review("U2", "B03", 1500000000),
        review("U2", "B02", 1500000000)])
    meta = [{"asin": "B01", "title": "Serum", "category": ["Luxury Beauty", "Skin Care"],
             "description": ["Line one.", "Line two."], "brand": "Acme", "main_cat": "Luxury Beauty"},
            {"asin": "B02", "title": "Cream", "category": [], "description": [], "brand": "", "main_cat": "Beauty"},
            {"asin": "B03", "title": "Oil", "category": ["Luxury Beauty"], "description": "plain string"},
            {"asin": "B01", "title": "Serum (repeated row)", "category": [], "description": []}]
    folder = write_amazon_2018(tmp_path / "amazon2018", reviews, meta)
    with pytest.warns(DataWarning, match="1 repeated metadata rows"):
        ds = amazon.load(folder)
    assert ds.info["release"] == 2018 and ds.info["repeated_meta_rows_dropped"] == 1
    assert item(ds, "B01") == {"title": "Serum", "categories": "Luxury Beauty > Skin Care",
                               "description": "Line one. Line two.", "brand": "Acme", "category": "Skin Care"}
    assert item(ds, "B02")["category"] == "Beauty" and item(ds, "B03")["description"] == "plain string"
    assert sequences(ds) == {"U1": ["B01", "B03", "B02"], "U2": ["B01", "B02", "B03"]}  # ties: item order


def test_amazon_2023_parent_asin_and_millisecond_timestamps(tmp_path):
    folder = tmp_path / "amazon2023"
    folder.mkdir()
    user = "AGKHLEW2SOWHNMFQIJGBECAF7INQ"
    rows = [(user, "P1", 1588687728923), (user, "P2", 1588615855070), (user, "P3", 1589665266052)]
    (folder / "All_Beauty.jsonl").write_text("\n".join(json.dumps(
        {"rating": 5.0, "title": "Such a lovely scent", "text": "This spray is really nice.", "images": [],
         "asin": f"{p}-variant", "parent_asin": p, "user_id": u, "timestamp": t, "helpful_vote": 0,
         "verified_purchase": True}) for u, p, t in rows) + "\n")
    (folder / "meta_All_Beauty.jsonl").write_text("\n".join(json.dumps(
        {"main_category": "All Beauty", "title": f"Product {p}", "average_rating": 4.8, "rating_number": 10,
         "features": [], "description": [f"{p} description"], "price": None, "images": [], "videos": [],
         "store": "Howard Products", "categories": [], "details": {}, "parent_asin": p}) for p in ("P1", "P2", "P3"))
        + "\n")
    assert detected(folder / "All_Beauty.jsonl") == "amazon"
    ds = amazon.load(folder)
    assert ds.info["release"] == 2023 and sequences(ds) == {"AGKHLEW2SOWHNMFQIJGBECAF7INQ": ["P2", "P1", "P3"]}
    assert item(ds, "P1") == {"title": "Product P1", "categories": "", "description": "P1 description",
                              "brand": "Howard Products", "category": "All Beauty"}
    assert ds.splits["test"].times.tolist() == [1589665266]


# ---- RecBole atomic files ------------------------------------------------------------------------------------

@pytest.fixture
def atomic(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\trating:float\tlabel:float\ttimestamp:float\n"
                                      "1\t10\t5\t1\t978300760\n1\t11\t3\t1\t978302109\n1\t12\t1\t0\t978302000\n"
                                      "1\t13\t4\t1\t978300000\n")
    (folder / "toy.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\t"
                                     "price:float\n10\tToy Story\t1995\tAnimation Comedy\t1.5\n11\tHeat\t1995\t"
                                     "Action Crime\t2\n12\tAriel\t1988\t\t0\n13\tCasino\t1995\tDrama\t3\n")
    (folder / "toy.user").write_text("user_id:token\tage:float\n1\t24\n")
    return folder


def test_recbole_atomic_files(atomic):
    assert detected(atomic) == "recbole" and detected(atomic / "toy.inter") == "recbole"
    ds = recbole_atomic.load(atomic)
    check_dataset(ds)
    assert ds.name == "toy" and ds.text_fields == ["movie_title", "release_year", "class"]
    assert item(ds, "10") == {"movie_title": "Toy Story", "release_year": "1995", "class": "Animation Comedy",
                              "category": "Animation"}
    assert item(ds, "12")["category"] == "unknown"
    assert sequences(ds) == {"1": ["13", "10", "11"]}  # label 0 row dropped
    assert ds.info["label_0_rows_dropped"] == 1 and ds.info["order"] == "timestamp"


def test_recbole_without_timestamp_keeps_file_order(tmp_path):
    (tmp_path / "a.inter").write_text("user_id:token\titem_id:token\nu\t3\nu\t1\nu\t2\n")
    (tmp_path / "a.item").write_text("item_id:token\ttitle:token_seq\n1\tOne\n2\tTwo\n3\tThree\n")
    ds = recbole_atomic.load(tmp_path / "a.inter")
    assert sequences(ds) == {"u": ["3", "1", "2"]} and ds.info["order"] == "file order"
    assert all(not imps.times.any() for imps in ds.splits.values())


def test_recbole_ml100k_from_the_wheel_reads_as_atomic_files():
    folder = movielens.packaged_ml100k_folder()
    if folder is None:
        pytest.skip("recbole's ml-100k files are not installed")
    assert detected(folder) == "recbole"
    ds = recbole_atomic.load(folder)  # the same counts as lego_core's own ml-100k reader
    assert (ds.name, ds.num_items, ds.num_users, len(ds.seq_items)) == ("ml-100k", 1682, 943, 100_000)
    assert item(ds, "1") == {"movie_title": "Toy Story", "release_year": "1995",
                             "class": "Animation Children's Comedy", "category": "Animation"}


# ---- registration --------------------------------------------------------------------------------------------

def test_formats_are_declared_and_registered():
    names = [f.name for m in MODULES for f in importlib.import_module(f"lego_core.data.readers.{m}").FORMATS]
    assert names == ["movielens-100k", "ml-1m", "ml-10m", "ml-csv", "goodreads", "amazon", "recbole"]
    for module in MODULES:
        assert module in formats._MODULES
        for fmt in importlib.import_module(f"lego_core.data.readers.{module}").FORMATS:
            assert fmt.options == {"negatives": 99, "seed": 0} and fmt.protocol and fmt.layout
            assert fmt.scheme == "leave-last-out"  # so cold_items applies to their registrations


def test_every_format_declares_its_split_protocol():
    schemes = {f.name: f.scheme for f in formats.all_formats()}
    assert {n for n, s in schemes.items() if s == "leave-last-out"} == {
        "movielens-100k", "ml-1m", "ml-10m", "ml-csv", "goodreads", "amazon", "recbole", "adressa"}
    assert {n for n, s in schemes.items() if s == "impressions"} == {"mind", "xmind", "pens", "ebnerd"}
    with pytest.raises(ValueError, match="scheme must be one of"):
        formats.Format("x", "x", "x", "x", lambda p: False, lambda p: None, scheme="leave-one-out")


def test_detection_tells_the_formats_apart(ml1m, mlcsv, goodreads_folder, atomic, tmp_path):
    assert [detected(p) for p in (ml1m, ml1m / "movies.dat", mlcsv, goodreads_folder, atomic)] == \
        ["ml-1m", "ml-1m", "ml-csv", "goodreads", "recbole"]
    assert detected(tmp_path) == ""


# ---- bad input: one line naming the file, the line or column, and the fix ------------------------------------

def error(call) -> str:
    before = cached()
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    assert cached() == before
    return message


def test_movielens_bad_inputs(ml1m, mlcsv):
    (ml1m / "movies.dat").unlink()
    assert "movies.dat not found" in error(lambda: movielens_variants.load_ml1m(ml1m))
    (ml1m / "movies.dat").write_text("1::Toy Story (1995)::Comedy\n")
    (ml1m / "ratings.dat").write_text("1::1::5::978300100\n1::2::3\n")
    assert "ratings.dat line 2 has no Timestamp" in error(lambda: movielens_variants.load_ml1m(ml1m))
    (ml1m / "ratings.dat").write_text("1::1::5::978300100\n1::2::3::978300101::x\n")
    assert "ratings.dat line 2 has 5 '::'-separated fields" in error(lambda: movielens_variants.load_ml1m(ml1m))
    (ml1m / "ratings.dat").write_text("1::1::5::978300100\n1::7::5::978300101\n")
    message = error(lambda: movielens_variants.load_ml1m(ml1m))
    assert "ratings.dat line 2: MovieID (field 2) '7' is not in" in message and "movies.dat" in message
    (ml1m / "ratings.dat").write_text("")
    assert "ratings.dat is empty" in error(lambda: movielens_variants.load_ml1m(ml1m))
    (mlcsv / "ratings.csv").write_text("userId,movieId,rating\n1,1,4.0\n")
    message = error(lambda: movielens_variants.load_csv(mlcsv))
    assert "ratings.csv lacks column(s) ['timestamp']" in message
    (mlcsv / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964981247\n1,99,4.0,964981247\n")
    assert "ratings.csv line 3: movieId '99' is not in" in error(lambda: movielens_variants.load_csv(mlcsv))
    (mlcsv / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964981247\n1,11,4.0\n")
    assert "ratings.csv: column 'timestamp' line 3 is empty" in error(lambda: movielens_variants.load_csv(mlcsv))
    (mlcsv / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,2015-01-01\n")
    assert "column 'timestamp' line 2 has non-numeric timestamp" in error(lambda: movielens_variants.load_csv(mlcsv))


def test_goodreads_bad_inputs(goodreads_folder):
    inter = goodreads_folder / "goodreads_interactions_poetry.json.gz"
    books = goodreads_folder / "goodreads_books_poetry.json.gz"
    books.rename(books.with_suffix(".bak"))
    assert f"{books} not found: the books file that goes with {inter.name}" in \
        error(lambda: goodreads.load(goodreads_folder))
    books.with_suffix(".bak").rename(books)
    write_gz(goodreads_folder / "goodreads_interactions_comics.json.gz", [])
    assert "more than one goodreads_interactions file" in error(lambda: goodreads.load(goodreads_folder))
    (goodreads_folder / "goodreads_interactions_comics.json.gz").unlink()
    good = gzip.decompress(inter.read_bytes()).decode().splitlines()
    write_gz(inter, good[:2] + ['{"user_id": "u", "book_id": "1",'] + good[2:])
    assert f"{inter} line 3 is not valid JSON" in error(lambda: goodreads.load(goodreads_folder))
    write_gz(inter, [line.replace('"date_added"', '"added"') for line in good])
    assert f"{inter} lacks key 'date_added'" in error(lambda: goodreads.load(goodreads_folder))
    write_gz(inter, good[:1] + [json.dumps(interaction("u", "77", "Fri Apr 19 08:15:15 -0700 2013"))])
    message = error(lambda: goodreads.load(goodreads_folder))
    assert f"{inter} line 2: book_id '77' is not in" in message
    write_gz(inter, good[:1] + [json.dumps(interaction("u", "1", "2013-04-19"))])
    assert f"{inter} line 2: date_added '2013-04-19' is not like" in error(lambda: goodreads.load(goodreads_folder))
    inter.write_text("\n".join(good))  # plain text under a .gz name
    assert f"{inter} is not gzip-compressed" in error(lambda: goodreads.load(goodreads_folder))
    inter.write_bytes(b"")
    assert f"{inter} is empty" in error(lambda: goodreads.load(goodreads_folder))
    write_gz(inter, [])
    assert f"{inter} has no JSON lines" in error(lambda: goodreads.load(goodreads_folder))
    inter.write_bytes(gzip.compress(b"\n".join(g.encode() for g in good))[:60])  # truncated download
    assert "truncated or not a valid gzip file" in error(lambda: goodreads.load(goodreads_folder))


def test_amazon_bad_inputs(tmp_path):
    reviews = write_gz(tmp_path / "reviews_Books_5.json.gz", jsonl([review("A", "B1", 1), review("A", "B2", 2),
                                                                    review("A", "B3", 3)]))
    meta = write_gz(tmp_path / "meta_Books.json.gz", [repr({"asin": f"B{i}", "title": "t"}) for i in (1, 2, 3)])
    assert amazon.load(tmp_path).num_items == 3
    write_gz(reviews, jsonl([review("A", "B1", 1), {"reviewerID": "A", "asin": "B2"}]))
    assert f"{reviews} line 2 has no 'unixReviewTime'" in error(lambda: amazon.load(tmp_path))
    write_gz(meta, ["{'asin': 'B1', 'title': 't'}", "{'asin': 'B2', 'title': }"])
    write_gz(reviews, jsonl([review("A", "B1", 1)]))
    assert f"{meta} line 2 is not valid JSON" in error(lambda: amazon.load(tmp_path))
    reviews.write_text(json.dumps(review("A", "B1", 1)) + "\n")
    assert f"{reviews} is not gzip-compressed" in error(lambda: amazon.load(tmp_path))
    write_gz(tmp_path / "reviews_Toys_5.json.gz", jsonl([review("A", "B1", 1)]))
    write_gz(tmp_path / "meta_Toys.json.gz", [repr({"asin": "B1"})]).rename(tmp_path / "meta_Toys.json")
    assert "holds several categories" in error(lambda: amazon.load(tmp_path))
    (tmp_path / "meta_Toys.json").unlink()
    message = error(lambda: amazon.load(tmp_path / "reviews_Toys_5.json.gz"))
    assert f"{tmp_path / 'meta_Toys.json.gz'} not found: the metadata file of reviews_Toys_5.json.gz" in message
    reviews.unlink()
    assert "no Amazon review + metadata pair" in error(lambda: amazon.load(tmp_path))


def test_recbole_bad_inputs(atomic):
    inter = atomic / "toy.inter"
    inter.write_text("user_id:token\titem:token\n1\t10\n")
    assert f"{inter} lacks field(s) ['item_id']" in error(lambda: recbole_atomic.load(atomic))
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t10\t5\n1\t11\n")
    assert f"{inter} line 3 has fewer than the 3 tab-separated fields" in error(lambda: recbole_atomic.load(atomic))
    inter.write_text("user_id:token\titem_id:token\n1\t10\n1\t99\n")
    assert f"{inter} line 3: item_id '99' is not in" in error(lambda: recbole_atomic.load(atomic))
    inter.write_text("user_id:token\titem_id:text\n1\t10\n")
    assert "field 'item_id:text' has no type" in error(lambda: recbole_atomic.load(atomic))
    inter.write_text("")
    assert f"{inter} is empty" in error(lambda: recbole_atomic.load(atomic))
    (atomic / "toy.item").unlink()
    assert f"{atomic / 'toy.item'} not found: the item file of toy.inter" in error(lambda: recbole_atomic.load(atomic))
    (atomic / "other.inter").write_text("user_id:token\titem_id:token\n")
    assert "more than one .inter file" in error(lambda: recbole_atomic.load(atomic))


def test_options_are_checked_before_reading(ml1m):
    assert "negatives" in error(lambda: movielens_variants.load_ml1m(ml1m, negatives=-1))
    assert "seed" in error(lambda: goodreads.load(ml1m, seed="x"))

