"""A query for live RTP stats: bounded in size, answered once, None once its deadline has passed."""

from __future__ import annotations

import threading
import time

import pytest

from engine.server.rtp_queries import MAX_QUERIED, StatsQuery


def test_a_query_names_at_most_max_queried_calls() -> None:
    assert len(StatsQuery(str(n) for n in range(MAX_QUERIED)).call_ids) == MAX_QUERIED
    with pytest.raises(ValueError, match="call_ids: at most 100"):
        StatsQuery(str(n) for n in range(MAX_QUERIED + 1))


def test_an_unanswered_query_gives_none_at_its_deadline_and_the_first_answer_counts() -> None:
    query = StatsQuery(["a"])
    assert query.wait(time.monotonic()) is None  # nobody answered by the deadline: the figures are unavailable
    answerer = threading.Thread(target=query.answered, args=({"a": {"received": 1}},))
    answerer.start()
    assert query.wait(time.monotonic() + 30) == {"a": {"received": 1}}
    answerer.join()
    query.answered({"a": {"received": 2}})
    assert query.answer == {"a": {"received": 1}}
