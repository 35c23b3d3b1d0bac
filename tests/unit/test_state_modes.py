"""Per-mode records: the `mode` command, the mode every event carries, per-mode counts (one fold)."""

from __future__ import annotations

import json

import pytest

from services.common.contracts.export import CSV_COLUMNS, to_csv, to_jsonl
from services.common.contracts.messages import Command, Counts, MessageError, ModeRun, StateSnapshot
from services.common.contracts.modes import InvalidModeError, normalize_mode
from services.common.contracts.sessions import SessionSummary
from services.state.fold import fold
from services.state.history import check_importable, parse_jsonl, summarize_sessions
from services.state.machine import Machine
from services.state.rules import CommandInput, Rejected, transition
from tests.unit.test_state_rules import NOW, RULES, D, R, V, cmd, lab, run


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("", ""), ("   ", ""), ("Competitive", "competitive"), ("QUICKPLAY", "quickplay"), ("Quick Play", "quickplay"),
        ("quick_play", "quickplay"), (" arcade ", "arcade"), ("My 6v6", "My 6v6"),
        ("Mystery-Heroes_2", "Mystery-Heroes_2"), ("Compétitif", "Compétitif"), ("x" * 32, "x" * 32),
    ],
)
def test_mode_names_are_normalised(name: str, stored: str) -> None:
    assert normalize_mode(name) == stored


@pytest.mark.parametrize(("name", "why"), [("x" * 33, "at most 32"), ("a/b", "'/'"), ("<b>", "'<' '>'"),
                                           ("tab\there", "'\\t'"), ("5²", "'²'")])
def test_bad_mode_names_are_refused_with_a_sentence(name: str, why: str) -> None:
    with pytest.raises(InvalidModeError) as info:
        normalize_mode(name)
    assert why in str(info.value)


def test_every_event_carries_the_mode_and_counts_split_by_mode() -> None:
    r = run([cmd("adjust", outcome=V, delta=1), cmd("mode", mode="Competitive"), lab(V, 0), lab(V, 250),
             cmd("adjust", outcome=D, delta=2), cmd("mode", mode="quick play"), cmd("adjust", outcome=R, delta=1)])
    assert [(e.type, e.mode) for e in r.events] == [
        ("session_started", ""), ("adjusted", ""), ("mode_changed", "competitive"), ("detected", "competitive"),
        ("adjusted", "competitive"), ("mode_changed", "quickplay"), ("adjusted", "quickplay")]
    m = r.machine
    assert m.mode == "quickplay" and m.counts == Counts(2, 2, 1)
    assert m.by_mode == {"": Counts(1, 0, 0), "competitive": Counts(1, 2, 0), "quickplay": Counts(0, 0, 1)}
    snap = m.snapshot()
    assert (snap.mode, snap.by_mode) == ("quickplay", m.by_mode)
    assert fold(r.events, RULES.cooldown_ms).by_mode == m.by_mode


def test_the_same_mode_again_records_nothing_and_a_bad_name_is_invalid() -> None:
    r = run([cmd("mode", mode="arcade")])
    again, events = transition(r.machine, CommandInput(Command("x", "default", "mode", mode="Arcade"), NOW), RULES)
    assert events == [] and again.mode == "arcade"
    with pytest.raises(Rejected) as info:
        transition(r.machine, CommandInput(Command("y", "default", "mode", mode="a;b"), NOW), RULES)
    assert info.value.code == "invalid" and "letters, digits" in info.value.message


def test_a_removal_comes_from_the_current_mode() -> None:
    m = run([cmd("mode", mode="competitive"), cmd("adjust", outcome=V, delta=1), cmd("mode", mode="arcade")]).machine
    with pytest.raises(Rejected) as info:
        transition(m, CommandInput(Command("x", "default", "adjust", outcome=V, delta=-1), NOW), RULES)
    assert info.value.message == ("cannot remove 1 victory in Arcade: this session counted 0 there; "
                                  "switch to the mode it was counted in, or use undo")
    r = run([cmd("mode", mode="competitive"), cmd("adjust", outcome=V, delta=-1)], machine=m)
    assert r.machine.counts == Counts() and r.machine.by_mode == {}


def test_undo_reverses_what_its_event_did_to_its_own_mode() -> None:
    r = run([cmd("mode", mode="competitive"), cmd("adjust", outcome=V, delta=1), cmd("adjust", outcome=V, delta=1),
             cmd("mode", mode="arcade"), cmd("undo")])
    assert r.machine.by_mode == {"competitive": Counts(1, 0, 0)} and r.machine.mode == "arcade"
    assert r.events[-1].mode == "arcade"  # the mode at the time of the undo; the reversal is competitive's


def test_set_applies_its_deltas_to_the_current_mode_clamped_and_undo_restores() -> None:
    r = run([cmd("mode", mode="competitive"), cmd("adjust", outcome=V, delta=3), cmd("mode", mode="arcade"),
             cmd("adjust", outcome=D, delta=1), cmd("set", counts=Counts(1, 4, 0))])
    # victories -2 in arcade (which had none: stays 0), defeats +3 in arcade
    assert r.machine.by_mode == {"competitive": Counts(3, 0, 0), "arcade": Counts(0, 4, 0)}
    undone = run([cmd("undo")], machine=r.machine).machine
    assert undone.by_mode == {"competitive": Counts(3, 0, 0), "arcade": Counts(0, 1, 0)}
    assert undone.counts == Counts(3, 1, 0)


def test_each_mode_has_its_own_streak_and_last_results() -> None:
    r = run([cmd("mode", mode="competitive"), cmd("adjust", outcome=V, delta=2), cmd("mode", mode="quickplay"),
             cmd("adjust", outcome=D, delta=3), cmd("mode", mode="competitive"), lab(V, 0), lab(V, 250)])
    m = r.machine
    assert m.results == "WWLLLW" and m.mode_results == {"competitive": "WWW", "quickplay": "LLL"}
    snap = m.snapshot()
    assert (snap.streak_outcome, snap.streak) == (V, 1)  # the session's run: broken by quickplay's defeats
    assert snap.mode_runs == {"competitive": ModeRun((V, V, V), V, 3), "quickplay": ModeRun((D, D, D), D, 3)}
    assert StateSnapshot.from_fields(snap.to_fields()).mode_runs == snap.mode_runs
    assert fold(r.events, RULES.cooldown_ms).mode_results == m.mode_results


def test_a_mode_streak_is_exact_beyond_the_last_results_shown() -> None:
    m = run([cmd("mode", mode="arcade"), cmd("adjust", outcome=D, delta=1), cmd("adjust", outcome=V, delta=25),
             cmd("mode", mode=""), cmd("adjust", outcome=R, delta=1)]).machine
    arcade = m.snapshot().mode_runs["arcade"]
    assert (arcade.streak_outcome, arcade.streak, arcade.recent) == (V, 25, (V,) * 20)
    assert m.snapshot().mode_runs[""] == ModeRun((R,), R, 1)


def test_undo_and_set_change_the_results_of_the_mode_they_counted_in() -> None:
    r = run([cmd("mode", mode="competitive"), cmd("adjust", outcome=V, delta=1), cmd("adjust", outcome=D, delta=1),
             cmd("mode", mode="arcade"), cmd("adjust", outcome=R, delta=1), cmd("undo"), cmd("undo")])
    assert r.machine.mode_results == {"competitive": "W"}  # arcade's draw, then competitive's defeat
    s = run([cmd("adjust", outcome=V, delta=1), cmd("set", counts=Counts(1, 2, 0))], machine=r.machine).machine
    # victories -1 in arcade (its W goes), defeats +2 in arcade: competitive's results stay
    assert s.mode_results == {"competitive": "W", "arcade": "LL"}
    back = run([cmd("undo")], machine=s).machine
    assert back.mode_results == {"competitive": "W", "arcade": "W"}
    # a removal takes the mode's latest result of that outcome
    m = run([cmd("adjust", outcome=D, delta=1), cmd("adjust", outcome=V, delta=1), cmd("adjust", outcome=V, delta=-1)],
            machine=back).machine
    assert m.mode_results["arcade"] == "WL" and m.snapshot().mode_runs["arcade"] == ModeRun((V, D), D, 1)


def test_a_new_session_starts_the_mode_results_from_nothing() -> None:
    r = run([cmd("mode", mode="competitive"), cmd("adjust", outcome=V, delta=2), cmd("new_session"),
             cmd("adjust", outcome=D, delta=1)])
    assert r.machine.mode_results == {"competitive": "L"}


@pytest.mark.parametrize("field", ["mode_results", "by_mode"])
@pytest.mark.parametrize("value", [None, [], "W"])
def test_a_corrupt_per_mode_field_is_a_message_error_not_a_crash(field: str, value: object) -> None:
    """The state service rebuilds a channel from its log on a MessageError; anything else would crash it."""
    raw = json.loads(run([cmd("mode", mode="arcade"), cmd("adjust", outcome=V, delta=1)]).machine.to_json())
    raw[field] = value
    with pytest.raises(MessageError):
        Machine.from_json(json.dumps(raw))


def test_snapshots_from_before_per_mode_results_read_back() -> None:
    one = run([cmd("mode", mode="arcade"), cmd("adjust", outcome=V, delta=2)]).machine
    two = run([cmd("mode", mode="quickplay"), cmd("adjust", outcome=D, delta=1)], machine=one).machine
    for m, expected in ((one, {"arcade": "WW"}), (two, {})):
        raw = json.loads(m.to_json())
        del raw["mode_results"]
        for u in raw["undo"]:
            del u["mode_results_before"]
        # one mode this session: its results are the session's; more: unknown here (the state service
        # takes them from the log, see tests/integration/test_state_commands.py)
        assert Machine.from_json(json.dumps(raw)).mode_results == expected
    snap = {k: v for k, v in two.snapshot().to_fields().items() if k != b"mode_runs"}
    assert StateSnapshot.from_fields(snap).mode_runs == {}


def test_a_new_session_keeps_the_mode_and_starts_its_counts_from_nothing() -> None:
    r = run([cmd("mode", mode="competitive"), cmd("adjust", outcome=V, delta=1), cmd("new_session")])
    start = r.events[-1]
    assert start.type == "session_started" and start.mode == "competitive"
    assert (r.machine.mode, r.machine.by_mode, r.machine.counts) == ("competitive", {}, Counts())


def test_a_mode_change_alone_does_not_block_an_import() -> None:
    exported = to_jsonl(run([cmd("mode", mode="arcade"), cmd("adjust", outcome=V, delta=1)]).events)
    m = run([cmd("mode", mode="competitive")]).machine
    after, _ = transition(m, CommandInput(Command("i", "default", "import", payload=exported), NOW), RULES)
    assert (after.mode, after.by_mode) == ("arcade", {"arcade": Counts(1, 0, 0)})


def test_snapshots_and_exports_from_before_modes_read_as_no_mode() -> None:
    m = run([cmd("adjust", outcome=V, delta=2), cmd("set", counts=Counts(2, 1, 0))]).machine
    raw = json.loads(m.to_json())
    del raw["mode"], raw["by_mode"], raw["mode_results"]
    for u in raw["undo"]:
        del u["mode"], u["mode_counts_before"], u["mode_results_before"]
    old = Machine.from_json(json.dumps(raw))
    assert old == m  # everything counted so far was counted without a mode
    line = json.loads(to_jsonl(run([cmd("adjust", outcome=V, delta=1)]).events).splitlines()[-1])
    del line["mode"]
    assert parse_jsonl(json.dumps(line))[0].mode == ""


def test_exports_have_a_mode_column_and_imports_check_it() -> None:
    events = run([cmd("mode", mode="My 6v6"), cmd("adjust", outcome=V, delta=1)]).events
    header, *rows = to_csv(events).splitlines()
    assert header.split(",")[-1] == "mode" and CSV_COLUMNS[-1] == "mode"
    assert rows[-1].endswith(",My 6v6")
    bad = to_jsonl(events).replace('"mode":"My 6v6"', '"mode":"<img>"')
    with pytest.raises(MessageError, match="not a valid mode name"):
        check_importable(parse_jsonl(bad))


def test_session_summaries_keep_their_counts_per_mode() -> None:
    r = run([cmd("mode", mode="arcade"), cmd("adjust", outcome=V, delta=2), cmd("new_session"),
             cmd("adjust", outcome=D, delta=1)])
    first, current = summarize_sessions(r.events)
    assert first.by_mode == {"arcade": Counts(2, 0, 0)} and current.by_mode == {"arcade": Counts(0, 1, 0)}
    assert SessionSummary.from_json(first.to_json()) == first
    assert first.as_dict()["by_mode"] == {"arcade": {"victories": 2, "defeats": 0, "draws": 0}}
    old = {k: v for k, v in json.loads(first.to_json()).items() if k != "by_mode"}  # stored before modes
    assert SessionSummary.from_json(json.dumps(old)).by_mode == {}
