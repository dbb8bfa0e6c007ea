"""The per-question stage record (retrieval/timings.py) and how queries carry it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from retrieval.query import Context, Query
from retrieval.scope import Scope
from retrieval.timings import EMBED, SEARCH, StageTimings


def test_a_stage_that_raises_is_still_recorded_and_repeated_stages_are_summed() -> None:
    timings = StageTimings()
    with timings.measure(SEARCH):
        pass
    with pytest.raises(RuntimeError), timings.measure(SEARCH):
        raise RuntimeError("store down")
    with timings.measure(EMBED):
        pass
    assert [run.stage for run in timings.runs] == [SEARCH, SEARCH, EMBED]
    totals = timings.totals()
    assert totals.keys() == {SEARCH, EMBED}
    assert totals[SEARCH] == timings.runs[0].seconds + timings.runs[1].seconds
    assert all(run.ended_ns >= run.started_ns for run in timings.runs)


def test_a_follow_up_reading_fills_the_same_record_as_its_question() -> None:
    vector = np.zeros(4, dtype=np.float32)
    query = Query("and how long?", vector, "en", Scope())
    follow_up = replace(query, context=Context("how long does a refund take? and how long?", vector))
    assert follow_up.timings is query.timings
    assert Query("other", vector, "en", Scope()).timings is not query.timings  # one record per question
