"""Errors at the door: what no store can keep is refused before the agent runs, and what
goes wrong writing (a full disk, an I/O error) is a StoreError naming the store, with
everything written before it intact."""

from __future__ import annotations

import pytest

from conftest import kinds
from muscle_mem import ConfigurationError

from .common import new_world, pay_engine


@kinds("sqlite", "postgres")
@pytest.mark.parametrize("about", ["campaign:bad \udcff", "campaign:nul\0", "kind\ud800:id"])
def test_an_about_no_store_can_keep_is_refused_before_the_agent_runs(store_url, stores, about):
    world = new_world()
    engine = pay_engine(stores.open(store_url), world)
    with pytest.raises(ConfigurationError, match="NUL or a lone surrogate"):
        engine("pay", "ann", "200", params={"payee": "ann"}, about=about)
    with pytest.raises(ConfigurationError, match="NUL or a lone surrogate"):
        engine.task_key("pay", "ann", "200", params={"payee": "ann"}, about=about)
    assert world["log"] == [] and engine.store.runs() == []
