"""Active speaker detection from RFC 6464 audio levels, with hysteresis.

Levels in (0 loud .. 127 silent, in -dBov, one per ~20 ms audio packet), speaker changes
out. A simplified form of the dominant speaker identification in jitsi-videobridge
(Volfin and Cohen, "Dominant speaker identification for multipoint videoconferencing",
2013): instead of their three time scales there are two.

- **Activity over the window.** A packet whose level is below ``threshold_dbov``
  (louder than -50 dBov by default) is speech. Each participant keeps an exponentially
  decaying sum of its speech time (time constant ``window``), so its *activity* is the
  share of the recent past it spent speaking, 0..1. A participant that sends nothing (a
  muted site) simply decays to 0.
- **Talk spurts.** Speech packets less than 0.5 s apart form one talk spurt. A spurt of
  0.3 s or more makes its participant a recent speaker.

At each `SpeakerDetector.tick` a challenger replaces the dominant speaker only when its
latest talk spurt has lasted at least ``hold`` seconds and its activity exceeds the
dominant speaker's by a clear margin (0.2). So a cough or a short reply never switches,
double talk over the dominant speaker never switches, and silence everywhere keeps the
last dominant speaker. Time is always passed in (any monotonic clock, in seconds);
nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MARGIN", "MIN_TALK", "SPURT_GAP", "SpeakerDetector"]

# Speech packets closer than this belong to one talk spurt (pauses between words).
SPURT_GAP = 0.5
# A talk spurt this long makes its participant a recent speaker (longer than a cough).
MIN_TALK = 0.3
# How much more active than the dominant speaker a challenger must be (activity 0..1).
MARGIN = 0.2
# Speech time credited to one packet: the time since the participant's previous
# packet (so 20, 40 or 60 ms packets all count right), at most this much.
_MAX_PACKET_TIME = 0.12
_ONE_PACKET_TIME = 0.02


@dataclass(slots=True)
class _Voice:
    """One participant's audio state."""

    score: float = 0.0  # decaying sum of speech seconds, as of `updated`
    updated: float = -math.inf
    last_packet: float = -math.inf
    last_speech: float = -math.inf
    spurt_start: float = -math.inf
    last_talked: float = -math.inf  # last speech packet of a spurt >= MIN_TALK


class SpeakerDetector:
    """Tracks who is speaking in one room and which of them holds the floor.

    Args:
        window: time constant of the activity average, in seconds.
        hold: how long a challenger must have been talking before it can take over.
        threshold_dbov: levels below this (louder than -threshold dBov) are speech.
    """

    def __init__(self, *, window: float = 1.0, hold: float = 1.2, threshold_dbov: int = 50) -> None:
        if window <= 0 or hold < 0:
            raise ValueError("window must be positive and hold not negative")
        self._window = window
        self._hold = hold
        self._threshold = threshold_dbov
        self._voices: dict[str, _Voice] = {}
        self._dominant: str | None = None

    @property
    def dominant(self) -> str | None:
        """The dominant speaker, or None before anyone has spoken long enough."""
        return self._dominant

    @property
    def recent(self) -> list[str]:
        """Speakers, most recent first, each once: the dominant speaker, then everyone
        who has talked for at least 0.3 s at a time, by when they last did."""
        talked = sorted(
            (
                (-voice.last_talked, pid)
                for pid, voice in self._voices.items()
                if voice.last_talked > -math.inf and pid != self._dominant
            )
        )
        ordered = [pid for _, pid in talked]
        if self._dominant is not None:
            ordered.insert(0, self._dominant)
        return ordered

    def add(self, pid: str, level: int, t: float) -> None:
        """Record one audio packet's level (0..127, -dBov) from ``pid`` at time ``t``.

        A participant first seen here is created; ``t`` must not go backwards for one
        participant (an older ``t`` counts as no time passed).
        """
        voice = self._voices.get(pid)
        if voice is None:
            voice = self._voices[pid] = _Voice()
        elapsed = t - voice.last_packet
        voice.last_packet = max(voice.last_packet, t)
        if level >= self._threshold:
            return
        # Credit the time this packet covers: the gap since the previous one, or one
        # packet's worth after a pause (or for the first packet).
        credit = max(elapsed, 0.0) if elapsed <= _MAX_PACKET_TIME else _ONE_PACKET_TIME
        self._decay(voice, t)
        voice.score += credit
        if t - voice.last_speech > SPURT_GAP:
            voice.spurt_start = t
        voice.last_speech = max(voice.last_speech, t)
        if voice.last_speech - voice.spurt_start >= MIN_TALK:
            voice.last_talked = voice.last_speech

    def remove(self, pid: str) -> None:
        """Forget a participant that left; it is never returned again (until `add`)."""
        self._voices.pop(pid, None)
        if self._dominant == pid:
            self._dominant = None

    def tick(self, t: float) -> str | None:
        """Decide at time ``t`` (every 100-300 ms) whether the floor changes hands.

        Returns:
            The new dominant speaker if it changed, else None.
        """
        current = self._voices.get(self._dominant) if self._dominant is not None else None
        bar = (self._activity(current, t) if current is not None else 0.0) + MARGIN
        best: str | None = None
        best_activity = 0.0
        for pid, voice in self._voices.items():
            if pid == self._dominant or voice.last_speech - voice.spurt_start < self._hold:
                continue
            activity = self._activity(voice, t)
            if activity < bar:
                continue
            # The most active challenger; on a tie, the smallest id (deterministic).
            if (
                best is None
                or activity > best_activity
                or (activity == best_activity and pid < best)
            ):
                best, best_activity = pid, activity
        if best is not None:
            self._dominant = best
            voice = self._voices[best]
            voice.last_talked = max(voice.last_talked, voice.last_speech)
        return best

    def activity(self, pid: str, t: float) -> float:
        """The share of the recent past (about ``window`` seconds) ``pid`` spent
        speaking, 0..1, as of ``t``; 0 for an unknown participant."""
        voice = self._voices.get(pid)
        return 0.0 if voice is None else self._activity(voice, t)

    def _activity(self, voice: _Voice, t: float) -> float:
        elapsed = t - voice.updated
        score = voice.score * math.exp(-elapsed / self._window) if elapsed > 0 else voice.score
        return min(score / self._window, 1.0)

    def _decay(self, voice: _Voice, t: float) -> None:
        elapsed = t - voice.updated
        if elapsed > 0:
            if voice.score:
                voice.score *= math.exp(-elapsed / self._window)
            voice.updated = t
