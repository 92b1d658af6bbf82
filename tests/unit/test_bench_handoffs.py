"""The load bench's gate hand-off figure (issue 16): each freed slot is followed to the SUBMITTED
of the job that takes it, from the gate's recorded acquires, hand-overs and releases."""

from __future__ import annotations

from types import SimpleNamespace

from bench.load import fifo_handoffs, slot_handoffs


def gate(acquires=(), transfers=(), releases=()):
    return SimpleNamespace(acquires=list(acquires), transfers=list(transfers), releases=list(releases))


def test_a_hand_over_counts_from_the_transfer_to_the_heirs_submitted():
    recorded = gate(acquires=[(0.0, "a", True), (1.0, "w", False), (11.0, "w", True)],
                    transfers=[(10.0, "a", "w")], releases=[(10.1, "a")])
    result = slot_handoffs(recorded, {"a": 0.5, "w": 12.5})
    assert result.to_waiting == [2.5]
    assert result.transferred == [2.5]
    assert result.to_newcomers == []


def test_a_plain_release_goes_to_the_next_take_and_a_newcomer_is_reported_apart():
    recorded = gate(acquires=[(0.0, "a", True), (0.1, "b", True), (1.0, "w", False),
                              (5.2, "new", True), (9.0, "w", True)],
                    releases=[(5.0, "a"), (8.0, "b")])
    result = slot_handoffs(recorded, {"a": 0.2, "b": 0.3, "new": 6.0, "w": 9.5})
    assert result.to_newcomers == [1.0]  # a's slot: freed at 5.0, taken by "new", SUBMITTED at 6.0
    assert result.to_waiting == [1.5]  # b's slot: freed at 8.0, the waiting job SUBMITTED at 9.5
    assert result.transferred == []


def test_a_slot_freed_while_nobody_waits_is_not_a_hand_off():
    recorded = gate(acquires=[(0.0, "a", True), (6.0, "late", True)], releases=[(5.0, "a")])
    result = slot_handoffs(recorded, {"a": 0.5, "late": 6.5})
    assert result.to_waiting == [] and result.to_newcomers == []


def test_the_previous_matcher_drifts_where_a_newcomer_takes_a_slot():
    # Two slots free while "w1" and "w2" wait; the first goes to a newcomer. Followed slot by slot,
    # w1 gets b's slot 1 s after it frees; the old matcher paired a's release with w1 (3 s).
    recorded = gate(acquires=[(0.0, "a", True), (0.0, "b", True), (1.0, "w1", False), (1.5, "w2", False),
                              (5.1, "new", True), (7.2, "w1", True)],
                    transfers=[(9.0, "c", "w2")],
                    releases=[(5.0, "a"), (7.0, "b"), (9.05, "c")])
    submitted = {"a": 0.1, "b": 0.1, "new": 5.5, "w1": 8.0, "w2": 10.0}
    assert sorted(slot_handoffs(recorded, submitted).to_waiting) == [1.0, 1.0]
    assert fifo_handoffs(recorded, submitted)[0] == 3.0
