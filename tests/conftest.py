"""Shared pytest fixtures."""
import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: on a shared 2-core machine, 2 threads spin against each
    other in many tiny forward/backward passes."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def series(tmp_path_factory):
    """The tiny notebook series, run once per session into one run dir (see test_notebooks);
    shared by the papermill notebook tests and the JupyterLab browser test."""
    from test_notebooks import Series
    root = Path(os.environ["AMDD_TEST_DIR"]) if os.environ.get("AMDD_TEST_DIR") \
        else tmp_path_factory.mktemp("series")
    root.mkdir(parents=True, exist_ok=True)
    print(f"\n[series] outputs under {root}")
    return Series(root)
