"""Shared fixtures: every test gets its own cache folder and empty Streamlit caches; a small
synthetic dataset."""
import sys

import pytest

import lego_core  # noqa: F401  (sets OMP_WAIT_POLICY before anything imports torch)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Point LEGO_CACHE_DIR at a per-test folder so tests never touch the real cache."""
    monkeypatch.setenv("LEGO_CACHE_DIR", str(tmp_path / "lego-cache"))
    if "streamlit" in sys.modules:  # st.cache_data / cache_resource outlive an AppTest: a page must not
        import streamlit as st  # show what an earlier test cached (a dataset list, a loaded dataset)

        st.cache_data.clear()
        st.cache_resource.clear()


@pytest.fixture
def synthetic_dataset():
    """A small synthetic Dataset (300 items, 120 users, 6 topics) with a planted signal."""
    from lego_core.data.readers.synthetic import generate

    return generate(n_items=300, n_users=120, n_topics=6, history_len=12, n_impressions=240,
                    impression_size=8, seed=7)
