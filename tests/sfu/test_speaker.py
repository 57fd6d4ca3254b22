"""signaling.sfu.speaker: scripted timelines of RFC 6464 levels, 20 ms apart, with the
detector ticked every 200 ms. Time is simulated; the detector never reads a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from signaling.sfu.speaker import SpeakerDetector

LOUD, QUIET, SILENT = 25, 70, 127
HOLD = 1.2


@dataclass
class Script:
    """Who speaks when. Everyone listed sends a packet every ``ptime`` seconds (level
    LOUD while speaking, else SILENT), except while muted, when it sends nothing."""

    speech: dict[str, list[tuple[float, float]]]
    muted: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    ptime: dict[str, float] = field(default_factory=dict)
    loud: dict[str, int] = field(default_factory=dict)
    actions: dict[float, Callable[[SpeakerDetector], None]] = field(default_factory=dict)


def run(
    detector: SpeakerDetector, script: Script, until: float, t0: float = 0.0
) -> list[tuple[float, str]]:
    """Play the script; return the (time - t0, speaker) of every change tick() reports."""
    changes = []
    for ms in range(0, round(until * 1000) + 1, 10):
        t = t0 + ms / 1000
        for when, action in script.actions.items():
            if round(when * 1000) == ms:
                action(detector)
        for pid, intervals in script.speech.items():
            ptime_ms = round(script.ptime.get(pid, 0.02) * 1000)
            if ms % ptime_ms or any(a <= ms / 1000 < b for a, b in script.muted.get(pid, [])):
                continue
            speaking = any(a <= ms / 1000 < b for a, b in intervals)
            detector.add(pid, script.loud.get(pid, LOUD) if speaking else SILENT, t)
        if ms % 200 == 0:
            changed = detector.tick(t)
            if changed is not None:
                changes.append((ms / 1000, changed))
    return changes


def only(changes: list[tuple[float, str]]) -> list[str]:
    return [pid for _, pid in changes]


@pytest.mark.parametrize("hold", [HOLD, 2.0])
def test_the_floor_passes_to_b_about_hold_seconds_after_b_starts(hold: float) -> None:
    detector = SpeakerDetector(hold=hold)
    changes = run(detector, Script({"A": [(0, 3)], "B": [(3, 6)]}), 6)
    assert only(changes) == ["A", "B"]
    (a_at, _), (b_at, _) = changes
    assert hold <= a_at <= hold + 0.3
    assert 3 + hold <= b_at <= 3 + hold + 0.3
    assert detector.dominant == "B"


def test_a_brief_overlap_switches_once() -> None:
    changes = run(SpeakerDetector(), Script({"A": [(0, 3)], "B": [(2.6, 6)]}), 6)
    assert only(changes) == ["A", "B"]
    assert changes[1][0] >= 2.6 + HOLD


def test_talking_over_the_dominant_speaker_does_not_take_the_floor() -> None:
    # A talks with short pauses (0.9 s on, 0.1 s off); B talks over it without a pause.
    detector = SpeakerDetector()
    a_talks = [(float(k), k + 0.9) for k in range(10)]
    changes = run(detector, Script({"A": a_talks, "B": [(4, 7.5)]}), 10)
    assert only(changes) == ["A"]
    assert detector.recent == ["A", "B"]


@pytest.mark.parametrize("length", [0.1, 0.25, 1.0])
def test_a_cough_or_a_short_noise_never_switches(length: float) -> None:
    detector = SpeakerDetector()
    changes = run(detector, Script({"A": [(0, 3)], "B": [(5, 5 + length)]}), 9)
    assert only(changes) == ["A"]


def test_separate_coughs_do_not_add_up_to_a_talk_spurt() -> None:
    detector = SpeakerDetector()
    script = Script({"A": [(0, 3)], "B": [(5, 5.25), (6, 6.25), (7, 7.25)]})
    assert only(run(detector, script, 10)) == ["A"]
    assert detector.recent == ["A"]


def test_a_cough_in_a_silent_room_makes_nobody_dominant() -> None:
    detector = SpeakerDetector()
    assert run(detector, Script({"A": [(1, 1.25)], "B": []}), 5) == []
    assert detector.dominant is None
    assert detector.recent == []


def test_silence_everywhere_keeps_the_last_dominant_speaker() -> None:
    detector = SpeakerDetector()
    script = Script({"A": [(0, 2)], "B": [], "C": []}, muted={"A": [(2, 30)]})
    assert only(run(detector, script, 30)) == ["A"]
    assert detector.dominant == "A"


def test_a_muted_site_sends_nothing_and_decays_to_silence() -> None:
    # A talks, then is muted (no packets at all); its activity must fade so that B
    # can take the floor as quickly as from a site that sends silence.
    detector = SpeakerDetector()
    script = Script({"A": [(0, 4)], "B": [(4, 8)]}, muted={"A": [(4, 8)]})
    changes = run(detector, script, 8)
    assert only(changes) == ["A", "B"]
    assert changes[1][0] <= 4 + HOLD + 0.3
    assert detector.activity("A", 8.0) < 0.05
    assert detector.activity("B", 8.0) > 0.9


def test_the_threshold_separates_speech_from_background() -> None:
    detector = SpeakerDetector(threshold_dbov=50)
    script = Script({"A": [(0, 5)], "B": [(0, 5)]}, loud={"A": 50, "B": 49})
    assert only(run(detector, script, 5)) == ["B"]
    assert detector.activity("A", 5.0) == 0.0


def test_background_noise_below_the_threshold_is_not_speech() -> None:
    detector = SpeakerDetector()
    script = Script({"A": [(0, 10)], "B": [(3, 6)]}, loud={"A": QUIET})
    assert only(run(detector, script, 10)) == ["B"]


def test_activity_does_not_depend_on_the_packet_duration() -> None:
    detector = SpeakerDetector()
    run(detector, Script({"A": [(0, 2)], "B": [(0, 2)]}, ptime={"B": 0.06}), 2)
    assert detector.activity("A", 2.0) == pytest.approx(detector.activity("B", 2.0), abs=0.05)
    assert detector.activity("A", 2.0) == pytest.approx(1 - 2.718281828**-2, abs=0.05)


def test_a_removed_participant_is_never_returned() -> None:
    # B has talked 1.26 s when it leaves, just before the tick (4.4) that would give it
    # the floor.
    def script(remove: bool) -> Script:
        actions: dict[float, Callable[[SpeakerDetector], None]] = {}
        if remove:
            actions = {4.38: lambda d: d.remove("B"), 9.5: lambda d: d.remove("A")}
        return Script(
            {"A": [(0, 2)], "B": [(3.1, 4.38)], "C": [(6, 9)]},
            muted={"B": [(4.38, 10)]},
            actions=actions,
        )

    assert only(run(SpeakerDetector(), script(remove=False), 10)) == ["A", "B", "C"]
    detector = SpeakerDetector()
    assert only(run(detector, script(remove=True), 10)) == ["A", "C"]
    assert detector.recent == ["C"]
    assert detector.activity("B", 10.0) == 0.0


def test_removing_the_dominant_speaker_leaves_nobody_until_someone_speaks() -> None:
    detector = SpeakerDetector()
    script = Script({"A": [(0, 2)], "B": [(5, 8)]}, muted={"A": [(3, 8)]})
    script.actions[3.0] = lambda d: d.remove("A")
    seen: list[tuple[float, str | None]] = []
    script.actions[4.0] = lambda d: seen.append((4.0, d.dominant))
    changes = run(detector, script, 8)
    assert only(changes) == ["A", "B"]
    assert seen == [(4.0, None)]
    assert "A" not in detector.recent
    assert detector.activity("A", 8.0) == 0.0


def test_recent_lists_the_dominant_speaker_then_others_by_when_they_last_talked() -> None:
    detector = SpeakerDetector()
    script = Script(
        {
            "A": [(0, 2)],  # dominant first
            "B": [(3, 5.5)],  # takes over
            "C": [(6, 6.5)],  # talks 0.5 s: recent, not dominant
            "D": [(7, 7.2)],  # a cough: not recent
            "E": [],  # never speaks
        }
    )
    assert only(run(detector, script, 9)) == ["A", "B"]
    assert detector.recent == ["B", "C", "A"]
    # A talks again, briefly: it moves ahead of C, behind the dominant speaker.
    detector.add("A", LOUD, 10.0)
    detector.add("A", LOUD, 10.4)
    assert detector.recent == ["B", "A", "C"]


def test_the_same_script_gives_the_same_result_at_any_clock_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_clock() -> float:
        raise AssertionError("the detector read a clock")

    for name in ("time", "monotonic", "perf_counter", "monotonic_ns", "time_ns"):
        monkeypatch.setattr(time, name, no_clock)
    script = Script({"A": [(0, 3)], "B": [(2.6, 6)], "C": [(4, 4.5), (7.1, 9)]})
    results = []
    for t0 in (0.0, 0.0, 12345.0, 1e6):
        detector = SpeakerDetector()
        results.append((run(detector, script, 10, t0), detector.recent))
    assert results[0] == results[1]
    # At another origin, only float rounding at a boundary could move a switch a tick.
    for changes, recent in results[2:]:
        assert recent == results[0][1] == ["C", "B", "A"]
        assert only(changes) == only(results[0][0]) == ["A", "B", "C"]
        assert [t for t, _ in changes] == pytest.approx([t for t, _ in results[0][0]], abs=0.21)


@pytest.mark.parametrize("first", ["M", "Z"])
def test_two_equal_challengers_resolve_to_the_smaller_id(first: str) -> None:
    detector = SpeakerDetector()
    speech = {first: [(0.0, 3.0)]} | {pid: [(0.0, 3.0)] for pid in ("M", "Z")}
    assert next(iter(speech)) == first
    assert only(run(detector, Script(speech), 3)) == ["M"]


def test_continuous_speech_is_fully_active_and_no_more() -> None:
    detector = SpeakerDetector()
    run(detector, Script({"A": [(0, 10)]}), 10)
    assert detector.activity("A", 9.98) == 1.0  # the last packet


def test_the_first_packet_after_a_gap_counts_as_one_packet_not_the_gap() -> None:
    detector = SpeakerDetector()
    detector.add("A", SILENT, 0.0)
    detector.add("A", LOUD, 5.0)  # unmuted: packets again, the first of them loud
    assert detector.activity("A", 5.0) == pytest.approx(0.02)


def test_half_the_packets_loud_is_half_active() -> None:
    detector = SpeakerDetector()
    for k in range(500):
        detector.add("A", LOUD if k % 2 else SILENT, k * 0.02)
    assert detector.activity("A", 10.0) == pytest.approx(0.5, abs=0.02)


def test_a_dominant_speaker_stays_recent_even_if_it_took_the_floor_quickly() -> None:
    # With a hold shorter than a recent-making spurt (0.3 s), the floor alone counts.
    detector = SpeakerDetector(hold=0.1)
    assert only(run(detector, Script({"A": [(0, 0.29)], "B": [(2, 4)]}), 4)) == ["A", "B"]
    assert detector.recent == ["B", "A"]


@pytest.mark.parametrize("kwargs", [{"window": 0.0}, {"window": -1.0}, {"hold": -0.1}])
def test_nonsense_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="window"):
        SpeakerDetector(**kwargs)
