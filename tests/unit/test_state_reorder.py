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


# ----------------------------------------------------------------------------- issue 13.2: bogus seqs


def test_a_seq_above_the_counter_is_set_aside_and_the_channel_goes_on() -> None:
    b: ReorderBuffer[str] = ReorderBuffer(500, next_seq=10)
    b.push(10**12, "bogus", 0)
    b.push(10, "a", 0)
    assert seqs(b.pop(0)) == [10]
    assert b.would_jump(500)
    assert b.pop(500, ceiling=20) == []
    assert b.take_suspects() == [(10**12, "bogus")] and b.take_suspects() == []
    assert b.suspect == 1 and b.skipped == 0 and b.next_seq == 11
    b.push(12, "c", 600)
    b.push(11, "b", 610)
    assert seqs(b.pop(610)) == [11, 12]  # still in order, nothing "old"
    assert b.wait_ms(700) is None  # nothing left to spin on


def test_a_jump_below_the_counter_is_real_and_goes_through() -> None:
    """Capture went on while frames were trimmed unread (seq continues from INCR, it never resets)."""
    b: ReorderBuffer[str] = ReorderBuffer(500, next_seq=10)
    b.push(50_000, "x", 0)
    assert seqs(b.pop(500, ceiling=50_000)) == [50_000]
    assert b.skipped == 49_990 and b.suspect == 0 and b.next_seq == 50_001


def test_without_a_counter_a_lone_far_jump_is_suspect_and_a_backed_one_is_not() -> None:
    b: ReorderBuffer[str] = ReorderBuffer(500, next_seq=10, max_jump=1000)
    b.push(5000, "lone", 0)
    assert b.pop(500) == [] and seqs(b.take_suspects()) == [5000]
    b.push(5001, "next", 600)  # the stream really goes on up there: a real jump
    assert seqs(b.pop(1100)) == [5001] and b.next_seq == 5002
    b2: ReorderBuffer[str] = ReorderBuffer(500, next_seq=10, max_jump=1000)
    b2.push(5000, "x", 0)
    b2.push(5001, "y", 0)
    assert seqs(b2.pop(500)) == [5000, 5001] and b2.take_suspects() == []
    b3: ReorderBuffer[str] = ReorderBuffer(500, next_seq=10, max_jump=1000)
    b3.push(1010, "within", 0)
    assert seqs(b3.pop(500)) == [1010]


def test_a_fresh_channel_without_a_counter_does_not_start_at_a_bogus_seq() -> None:
    b: ReorderBuffer[str] = ReorderBuffer(500, max_jump=1000)
    b.push(10**12, "bogus", 0)
    assert b.pop(500) == [] and b.next_seq is None and b.suspect == 1
    b.push(1, "a", 600)
    assert seqs(b.pop(1100)) == [1] and b.next_seq == 2


def test_an_error_label_never_closes_a_gap() -> None:
    b: ReorderBuffer[str] = ReorderBuffer(500, next_seq=1)
    b.push(1, "a", 0)
    b.push(5, "error", 0, verdict=False)
    assert seqs(b.pop(0)) == [1]
    assert seqs(b.pop(500, ceiling=10)) == [5]  # released in turn...
    assert b.next_seq == 2 and b.skipped == 0  # ...but the cursor did not jump to it
    b.push(3, "c", 600)
    assert b.pop(600) == []  # 2 is still awaited: order is kept
    b.push(2, "b", 650)
    assert seqs(b.pop(650)) == [2, 3]


def test_an_error_label_with_a_bogus_seq_is_suspect_too() -> None:
    b: ReorderBuffer[str] = ReorderBuffer(500, next_seq=7)
    b.push(10**12, "error", 0, verdict=False)
    assert b.pop(500, ceiling=8) == [] and seqs(b.take_suspects()) == [10**12]
