"""The one rule both stores use to answer a chain or ``_has`` (server.search.cost): drive from the
sub-query's targets when they are few and no more than the candidates, test each candidate otherwise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.search import cost
from server.search.cost import DRIVE_CAP, Side, choose

counts = st.one_of(st.none(), st.integers(min_value=0, max_value=2 * DRIVE_CAP))


@pytest.mark.parametrize(("targets", "candidates", "side"), [
    (0, None, Side.DRIVE_FROM_TARGETS),  # nothing to find: one empty $in / an empty driver
    (3, None, Side.DRIVE_FROM_TARGETS),  # few targets, nothing narrows the candidates
    (DRIVE_CAP - 1, None, Side.DRIVE_FROM_TARGETS),
    (DRIVE_CAP, None, Side.TEST_CANDIDATES),  # counted up to the cap: "at least that many"
    (None, None, Side.TEST_CANDIDATES),  # not countable (a nested sub-query only a walk answers)
    (None, 2, Side.TEST_CANDIDATES),
    (40, 3, Side.TEST_CANDIDATES),  # fewer candidates than targets: test those
    (3, 3, Side.DRIVE_FROM_TARGETS),  # ties go to the targets
    (3, 40, Side.DRIVE_FROM_TARGETS),
    (DRIVE_CAP, DRIVE_CAP, Side.TEST_CANDIDATES),  # both broad: walk in result order
])
def test_the_side_chosen(targets: int | None, candidates: int | None, side: Side) -> None:
    assert choose(targets, candidates) is side


@given(counts, counts)
def test_targets_are_driven_only_when_few_and_no_more_than_the_candidates(targets: int | None,
                                                                          candidates: int | None) -> None:
    side = choose(targets, candidates)
    drive = targets is not None and targets < DRIVE_CAP and (candidates is None or targets <= candidates)
    assert (side is Side.DRIVE_FROM_TARGETS) == drive


def test_the_cap_is_read_when_choosing_so_tests_can_lower_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose(3) is Side.DRIVE_FROM_TARGETS
    monkeypatch.setattr(cost, "DRIVE_CAP", 3)
    assert choose(3) is Side.TEST_CANDIDATES
    assert choose(2, limit=2) is Side.TEST_CANDIDATES


def test_the_explain_line_names_the_side_and_the_counts() -> None:
    assert cost.explain("subject", Side.DRIVE_FROM_TARGETS, 2, None) == (
        f"subject: drive from the targets (2 targets, candidates: the whole type; cap {DRIVE_CAP})")
    assert cost.explain("_has:Observation:subject", Side.TEST_CANDIDATES, DRIVE_CAP, 7) == (
        f"_has:Observation:subject: test each candidate (targets >= {DRIVE_CAP}, 7 candidates; cap {DRIVE_CAP})")
    assert "targets not counted" in cost.explain("x", Side.TEST_CANDIDATES, None, None)
