"""The per-channel reorder buffer (pure)."""

from __future__ import annotations

from services.state.reorder import ReorderBuffer


def seqs(items: list[tuple[int, str]]) -> list[int]:
    return [s for s, _ in items]


def test_in_order_labels_pass_at_once() -> None:
    b: ReorderBuffer[str] = ReorderBuffer(500, next_seq=1)
    b.push(1, "a", 0)
    b.push(2, "b", 0)
    assert seqs(b.pop(0)) == [1, 2] and len(b) == 0


def test_out_of_order_labels_are_put_back_in_order() -> None:
    b: ReorderBuffer[str] = ReorderBuffer(500, next_seq=1)
    b.push(3, "c", 0)
    b.push(2, "b", 10)
    assert b.pop(20) == []  # 1 is missing
    assert b.wait_ms(20) == 480
    b.push(1, "a", 30)
    assert seqs(b.pop(30)) == [1, 2, 3] and b.skipped == 0


def test_a_gap_is_skipped_after_the_window() -> None:
    b: ReorderBuffer[str] = ReorderBuffer(500, next_seq=1)
    b.push(1, "a", 0)
    b.push(4, "d", 100)
    assert seqs(b.pop(100)) == [1]
    assert b.pop(599) == []
    assert seqs(b.pop(600)) == [4] and b.skipped == 2
    b.push(3, "late", 700)  # missed the window: released at once, the rules ignore it
    assert seqs(b.pop(700)) == [3]


def test_duplicates_go_through_together() -> None:
    b: ReorderBuffer[str] = ReorderBuffer(500, next_seq=1)
    b.push(1, "a", 0)
    b.push(1, "a again", 0)
    assert b.pop(0) == [(1, "a"), (1, "a again")]


def test_a_fresh_channel_waits_the_window_for_its_first_label() -> None:
    b: ReorderBuffer[str] = ReorderBuffer(500)
    b.push(1001, "x", 0)
    b.push(1000, "w", 50)
    assert b.pop(100) == []
    assert seqs(b.pop(500)) == [1000, 1001] and b.skipped == 0
    assert b.wait_ms(600) is None


def test_window_zero_never_waits() -> None:
    b: ReorderBuffer[str] = ReorderBuffer(0, next_seq=1)
    b.push(5, "e", 0)
    assert seqs(b.pop(0)) == [5] and b.skipped == 4
