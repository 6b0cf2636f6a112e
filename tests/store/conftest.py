"""Fixtures of the store tests: a real ovsdb-server with the northbound schema."""

import pytest

from ovsdb import nbserver
from ovsdb.nb import Northbound


@pytest.fixture
def nb(tmp_path):
    """A northbound store client over a fresh ovsdb-server, stopped after the test."""
    store = Northbound(nbserver.start(str(tmp_path))).start()
    yield store
    store.stop()
    nbserver.stop(str(tmp_path))
