"""End to end in a real headless Chromium: start the app, drag bricks into the slots, launch a quick
run, wait for it on Training, see the item map on Embeddings and the recommendations on Users with
why each was chosen (drawn on the map too), run a sweep, and compare two runs' aligned maps.
Screenshots of every step go to tests/artifacts/ (git-ignored) for a human look."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
SORTABLES = 'iframe[title="streamlit_sortables.sortable_items"]'
EXPECT_TIMEOUT_MS = 30_000  # each assertion retries this long: on a shared CI machine a rerun can take seconds

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason=f"{CHROMIUM} is absent: install it with "
                                        "`apt-get install -y chromium chromium-driver` to run the browser test")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _patient_assertions():
    """Playwright's `expect` retries for 5 s by default; a loaded machine needs longer for a rerun
    to reach the page (the 'Running' widget may not even have appeared when _wait_idle looks)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture
def server(tmp_path):
    """`streamlit run app.py` on a free port with its own cache folder; stopped afterwards."""
    port = _free_port()
    env = {**os.environ, "LEGO_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.address", "127.0.0.1", "--server.port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()
            assert time.monotonic() < deadline, "streamlit did not start listening within 60 s"
            time.sleep(0.3)
    yield {"url": f"http://127.0.0.1:{port}", "cache": tmp_path / "cache", "log": tmp_path / "streamlit.log"}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    _stop_runs(tmp_path / "cache")


def _stop_runs(cache: Path) -> None:
    """Cancel any run the test left active (a failure mid-way must not leave trainers behind)."""
    from lego_core import jobs, runs

    _stop_sweeps(cache)
    if not (cache / "runs").exists():
        return
    for run in runs.list(cache / "runs"):
        if run.is_active():
            try:
                jobs.cancel(run.id, timeout=5, root=cache / "runs")
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass


def _stop_sweeps(cache: Path) -> None:
    """Ask the sweep workers the test started to stop (they cancel their runs)."""
    if not (cache / "sweeps").exists():
        return
    from lego_core import sweeps

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGO_CACHE_DIR", str(cache))
        for sweep_id, storage in sweeps.list_sweeps():
            try:
                sweeps.stop(sweep_id, storage=storage)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished running the script (no 'Running...' status widget)."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def _pick(page, box, option: str) -> None:
    """Pick `option` in the combobox `box` from the keyboard: a click does not always open the list
    (not the first after an expander opens), and Enter before the list is drawn selects nothing."""
    from playwright.sync_api import Error

    choice = page.get_by_role("option", name=option, exact=True)
    for attempt in range(3):
        box.focus()
        box.press("ArrowDown")  # opens the list
        try:
            choice.click(timeout=10_000)
            break
        except Error:
            if attempt == 2:
                raise
            box.press("Escape")
    _wait_idle(page)


def _board(page):
    """The brick board once it is settled: after a drop the app redraws it (a new iframe replaces
    the old one over a rerun or two), so wait until one laid-out board stays for a moment."""
    script = f"""() => Array.from(document.querySelectorAll('{SORTABLES}')).filter(f => f.offsetHeight > 0).length"""
    deadline = time.monotonic() + 30
    stable = 0
    while stable < 3:
        assert time.monotonic() < deadline, "the brick board never settled"
        ready = page.evaluate(script) == 1 and page.evaluate(f"() => document.querySelectorAll('{SORTABLES}').length") == 1
        stable = stable + 1 if ready else 0
        page.wait_for_timeout(300)
    return page.frame_locator(SORTABLES)


def _drag(page, item: str, slot_index: int) -> None:
    """Drag a brick into a slot of the board (small mouse steps: the drag library ignores a jump)."""
    frame = _board(page)
    source = frame.get_by_text(item, exact=True).bounding_box()
    target = frame.locator("div.sortable-container-body").nth(slot_index).bounding_box()
    x0, y0 = source["x"] + source["width"] / 2, source["y"] + source["height"] / 2
    x1, y1 = target["x"] + target["width"] - 30, target["y"] + target["height"] / 2
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(x0 + (x1 - x0) * i / 20, y0 + (y1 - y0) * i / 20)
        page.wait_for_timeout(25)
    page.mouse.up()
    _wait_idle(page)


def _lasso(page, chart) -> None:
    """Draw a lasso around most of a plotly chart's plotting area (the app's default drag mode)."""
    box = chart.locator(".nsewdrag").first.bounding_box()
    left, top = box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1
    right, bottom = box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.9
    corners = [(left, top), (right, top), (right, bottom), (left, bottom), (left, top + 5)]
    page.mouse.move(*corners[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(corners, corners[1:]):
        for i in range(1, 11):
            page.mouse.move(x0 + (x1 - x0) * i / 10, y0 + (y1 - y0) * i / 10)
            page.wait_for_timeout(15)
    page.mouse.up()
    _wait_idle(page)


def _nav(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, level=1).wait_for(timeout=60_000)
    _wait_idle(page)


def test_build_train_and_explore_in_a_real_browser(server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})  # tall: Streamlit scrolls inside
        page.set_default_timeout(60_000)
        try:
            page.goto(server["url"])
            page.get_by_role("heading", name="Datasets", level=1).wait_for()
            _wait_idle(page)
            expect(page.get_by_text("1,682").first).to_be_visible()  # ml-100k, the default
            _shot(page, "01-datasets")

            sidebar = page.get_by_test_id("stSidebar")
            _pick(page, sidebar.get_by_label("Dataset", exact=True), "synthetic")
            expect(page.get_by_test_id("stMetricValue").first).to_have_text("300")
            _nav(page, "Builder")
            _drag(page, "cnn (content)", 3)  # containers: 3 palettes, then content/behaviour/predictor slots
            # the select boxes (keyboard route) follow the drops, and the board shows one brick per slot
            expect(page.get_by_role("combobox", name="Content brick")).to_have_value("cnn")
            _drag(page, "additive (behaviour)", 4)
            expect(page.get_by_role("combobox", name="Behaviour brick")).to_have_value("additive")
            frame = _board(page)
            expect(frame.locator("div.sortable-container-body").nth(3)).to_have_text("cnn (content)")
            expect(frame.locator("div.sortable-container-body").nth(4)).to_have_text("additive (behaviour)")
            expect(frame.locator("div.sortable-container-body").nth(1)).to_contain_text("attention (behaviour)")
            _shot(page, "02-builder-bricks")
            page.get_by_text("Quick test run", exact=True).click()
            _wait_idle(page)
            expect(page.get_by_test_id("stMetricValue").first).not_to_be_empty()  # parameter count
            page.get_by_role("button", name="Launch").click()
            expect(page.get_by_text("Launched run")).to_be_visible()
            _shot(page, "03-builder-launched")

            page.get_by_role("link", name="Open Training").click()
            page.get_by_role("heading", name="Training", level=1).wait_for()
            state = page.get_by_test_id("stMetric").filter(has_text="State").get_by_test_id("stMetricValue")
            expect(state).to_have_text("succeeded", timeout=150_000)  # refreshed by the fragment
            page.get_by_role("heading", name="Test metrics").wait_for()
            _wait_idle(page)
            _shot(page, "04-training")

            _nav(page, "Embeddings")
            chart = page.get_by_test_id("stPlotlyChart").first
            expect(chart).to_be_visible()
            expect(chart.locator(".scatterlayer .point, .gl-container canvas").first).to_be_attached()
            expect(page.get_by_text("· PCA").or_(page.get_by_text("· UMAP")).first).to_be_visible()
            _shot(page, "05-embeddings-pca")
            expect(page.get_by_text("· UMAP").first).to_be_visible(timeout=120_000)  # replaces PCA when ready
            _wait_idle(page)
            _lasso(page, page.get_by_test_id("stPlotlyChart").first)
            expect(page.get_by_text("selected items")).to_be_visible()  # the lasso lists what it caught
            expect(page.get_by_test_id("stDataFrame")).to_have_count(1)
            _shot(page, "06-embeddings-umap")

            _nav(page, "Users")
            page.get_by_role("heading", name="Top 10").wait_for()
            expect(page.get_by_test_id("stDataFrame")).to_have_count(3)  # recommendations, history, test clicks
            expect(page.get_by_test_id("stMetric").filter(has_text="History length")).to_be_visible()
            _shot(page, "07-users")
            # why: each recommended item's own top clicks (signed contributions), then drawn on the map
            why = page.get_by_text("Why these items")
            why.first.scroll_into_view_if_needed()
            expect(why.first).to_be_visible()
            expect(page.get_by_text("exact decomposition").first).to_be_visible()  # additive + dot: exact
            lines = page.locator("[class*='st-key-why-'] li").all_inner_texts()
            assert len(lines) == 10 and len({line.split("←")[-1] for line in lines}) > 1, lines  # per item
            _shot(page, "07a-users-explanation")
            page.get_by_role("button", name="Show on the map").first.click()  # one click: the map opens
            page.get_by_role("heading", name="Embeddings", level=1).wait_for()
            _wait_idle(page)
            expect(page.get_by_text("Showing why user")).to_be_visible()
            expect(page.get_by_test_id("stPlotlyChart").first.get_by_text("why: recommended")).to_be_visible()
            _shot(page, "07b-embeddings-explanation")

            _nav(page, "Experiments")
            expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
            expect(page.get_by_test_id("stMultiSelect").first).to_contain_text("succeeded")
            _wait_idle(page)
            _shot(page, "08-experiments")
            warm_cold = page.get_by_test_id("stPlotlyChart").filter(has_text="Warm vs cold, per run")
            warm_cold.scroll_into_view_if_needed()
            expect(warm_cold.get_by_text("warm", exact=True).first).to_be_visible()  # the legend: all, warm (cold)
            _shot(page, "08a-experiments-warm-cold")

            # a sweep: the Builder's Sweep mode, two content bricks, one seed; ranked on the Leaderboard
            _nav(page, "Builder")
            page.get_by_text("Quick test run", exact=True).click()  # the base: a quick run
            _wait_idle(page)
            page.get_by_text("Sweep", exact=True).click()
            _wait_idle(page)
            page.get_by_test_id("stMultiSelect").filter(has_text="Content bricks to try").locator("input").click()
            page.keyboard.type("pooling")
            page.get_by_role("option", name="pooling", exact=True).click()
            page.keyboard.press("Escape")
            _wait_idle(page)
            expect(page.get_by_test_id("stMultiSelect").filter(has_text="Content bricks to try")).to_contain_text("pooling")
            seeds = page.get_by_role("spinbutton", name="Seeds per configuration")
            seeds.fill("1")
            seeds.press("Enter")
            _wait_idle(page)
            expect(page.get_by_text("2 configurations of 2 possible × 1 seed(s)")).to_be_visible()
            expect(page.get_by_text("Estimated time").first).to_be_visible()
            _shot(page, "09-builder-sweep")
            page.get_by_role("button", name="Launch sweep").click()
            expect(page.get_by_text("Launched sweep")).to_be_visible()
            page.get_by_role("link", name="Open Leaderboard").click()
            page.get_by_role("heading", name="Leaderboard", level=1).wait_for()
            state = page.get_by_test_id("stMetric").filter(has_text="State").get_by_test_id("stMetricValue")
            expect(state).to_have_text("finished", timeout=150_000)  # refreshed by the fragment
            _wait_idle(page)
            expect(page.get_by_test_id("stMetric").filter(has_text="Trials done")).to_contain_text("2 of 2")
            expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
            _shot(page, "10-leaderboard")
            page.get_by_role("link", name="Open seed").first.click()
            page.get_by_role("heading", name="Training", level=1).wait_for()
            _wait_idle(page)
            _shot(page, "11-training-from-leaderboard")

            # two runs compared: the second map aligned onto the first, coloured by how much items moved
            _nav(page, "Embeddings")
            if page.get_by_role("button", name="Clear").count():  # the explanation sent from Users
                page.get_by_role("button", name="Clear").click()
                _wait_idle(page)
            page.get_by_label("Side by side with", exact=True).click()
            page.get_by_role("option").nth(1).click()  # the first run other than "(none)"
            _wait_idle(page)
            overlap = page.get_by_test_id("stMetric").filter(has_text="Neighbour overlap")
            expect(overlap.get_by_test_id("stMetricValue")).to_contain_text("%")
            expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2)
            expect(page.get_by_text("UMAP is computing")).to_have_count(0, timeout=120_000)  # both maps in UMAP
            _wait_idle(page)
            expect(page.get_by_text("· UMAP · aligned")).to_have_count(2)
            _shot(page, "12-embeddings-compare")
        except Exception:
            _shot(page, "failure")
            print(server["log"].read_text()[-5000:])
            raise
        finally:
            browser.close()


def _ml1m_folder(folder: Path) -> Path:
    """A small ml-1m-format folder: 120 movies in four genres; 150 users of 16 ratings each, three in
    four of their own favourite genre and the rest spread over the others, so histories span genres
    and a genre signal is there to learn (two recommended items then owe their scores to different
    clicks)."""
    genres = ("Comedy", "Drama", "Horror", "Sci-Fi")
    movies = [f"{i}::Movie {i} {genres[i % 4]} story ({1980 + i % 20})::{genres[i % 4]}" for i in range(1, 121)]
    ratings = []
    for u in range(1, 151):
        for k in range(16):
            genre = u % 4 if k % 4 else (u + k // 4 + 1) % 4  # favourite, or one of the others
            item = 4 * ((7 * u + 5 * k) % 30) + genre or 120
            ratings.append(f"{u}::{item}::4::{1_000_000 + 100 * u + k}")
    folder.mkdir(parents=True)
    (folder / "movies.dat").write_text("\n".join(movies) + "\n")
    (folder / "ratings.dat").write_text("\n".join(ratings) + "\n")
    (folder / "users.dat").write_text("".join(f"{u}::F::25::3::55117\n" for u in range(1, 151)))
    return folder


def test_first_time_walk_registered_dataset_cold_items_hybrid_and_reload(server, tmp_path):
    """Issue 21's walk: a MovieLens-1M-format folder added from a path -> 10% cold items -> a hybrid
    NRMS (item ID vector added) -> Users: the explanation differs between recommended items -> a
    reload keeps the dataset and the cold share."""
    from playwright.sync_api import expect, sync_playwright

    folder = _ml1m_folder(tmp_path / "ml-1m")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(60_000)
        try:
            page.goto(server["url"])
            page.get_by_role("heading", name="Datasets", level=1).wait_for()
            _wait_idle(page)
            page.get_by_role("tab", name="Add a dataset").click()
            page.get_by_role("tab", name="Any format").click()
            page.get_by_placeholder("from the folder or file name").fill("ml1m")
            page.get_by_label("Folder or file", exact=True).fill(str(folder))
            page.get_by_role("button", name="Register", exact=True).click()
            expect(page.get_by_text("Registered 'ml1m'")).to_be_visible()
            _wait_idle(page)
            sidebar = page.get_by_test_id("stSidebar")
            expect(sidebar.get_by_role("combobox", name="Dataset")).to_have_value("ml1m")
            _shot(page, "20-registered-ml1m")

            sidebar.get_by_text("Cold items: none").click()  # offered: the declaration says leave-last-out
            thumb = sidebar.get_by_role("slider")
            thumb.focus()
            thumb.press("ArrowRight")
            thumb.press("ArrowRight")  # steps of 5%
            _wait_idle(page)
            expect(sidebar.get_by_text("Cold items: 10%")).to_be_visible()
            expect(page).to_have_url(re.compile(r"[?&]dataset=ml1m&cold=10\b"))  # what a reload starts from
            _shot(page, "21-cold-items")

            _nav(page, "Builder")
            expect(page.get_by_role("combobox", name="Preset")).to_have_value("NRMS")
            page.get_by_text("Training settings", exact=False).first.click()
            hybrid = page.get_by_role("combobox", name="Item ID vector")  # the hybrid item vector, in words
            _pick(page, hybrid, "added")
            expect(hybrid).to_have_value("added")
            expect(page.get_by_role("combobox", name="Preset")).to_have_value("Custom")
            expect(page.get_by_text("item_id: add").first).to_be_attached()  # in the recipe's YAML
            rate = page.get_by_role("spinbutton", name="Learning rate", exact=True)
            rate.fill("0.01")  # a quick run that learns the genres
            rate.press("Enter")
            _wait_idle(page)
            page.get_by_text("Quick test run", exact=True).click()
            _wait_idle(page)
            page.get_by_role("combobox", name="Preset").scroll_into_view_if_needed()
            _shot(page, "22-builder-hybrid")
            page.get_by_role("button", name="Launch").click()
            expect(page.get_by_text("Launched run")).to_be_visible()

            page.get_by_role("link", name="Open Training").click()
            page.get_by_role("heading", name="Training", level=1).wait_for()
            state = page.get_by_test_id("stMetric").filter(has_text="State").get_by_test_id("stMetricValue")
            expect(state).to_have_text("succeeded", timeout=150_000)
            page.get_by_role("heading", name="Test metrics").wait_for()
            _wait_idle(page)
            _shot(page, "23-training-hybrid")

            _nav(page, "Users")
            page.get_by_role("heading", name="Top 10").wait_for()
            why = page.get_by_text("Why these items")
            why.first.scroll_into_view_if_needed()
            expect(why.first).to_be_visible()
            expect(page.get_by_text("occlusion").first).to_be_visible()  # self-attention: not linear in the clicks
            lines = page.locator("[class*='st-key-why-'] li").all_inner_texts()
            signed = [float(x) for line in lines for x in re.findall(r"\(([+-]\d\.\d\d)\)", line.split("←")[-1])]
            assert len(lines) == 10 and len(signed) == 30 and any(signed), lines  # 3 signed clicks per item
            # the explanation is each item's own: the clicks' contributions differ from item to item (after
            # this quick run the same three clicks lead for most items, in another order for some)
            per_item = {line.split("←")[-1].strip() for line in lines}
            assert len(per_item) > 1, lines
            _shot(page, "24-users-hybrid-why")

            page.reload()  # a new session: the address brings the dataset and its cold share back
            page.get_by_role("heading", name="Users", level=1).wait_for()
            _wait_idle(page)
            sidebar = page.get_by_test_id("stSidebar")
            expect(sidebar.get_by_role("combobox", name="Dataset")).to_have_value("ml1m")
            expect(sidebar.get_by_text("Cold items: 10%")).to_be_visible()
            page.get_by_role("heading", name="Top 10").wait_for()  # its run listed: the sidebar's dataset
            _shot(page, "25-reload-keeps-dataset")
        except Exception:
            _shot(page, "failure-walk")
            print(server["log"].read_text()[-5000:])
            raise
        finally:
            browser.close()
