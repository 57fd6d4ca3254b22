"""Who receives whose media in a meeting: Last-N video, as in jitsi-videobridge, simplified.

A pure function of one snapshot of the room. Each subscriber receives the camera video of
at most N others, chosen in this order: the chair(s) and the floor holder (pinned: always
received, even beyond N), then the speakers most recent first, then other cameras in a
stable order (by id) to fill the remaining slots. Everyone receives every unmuted audio
and, bandwidth permitting, every screen. A camera that nobody receives is *paused*: its
publisher is told to stop sending it, which is what lets a 30-site meeting fit one
worker core (docs/media-engine.md 0 and 7).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

__all__ = ["LOW_BANDWIDTH_VIDEOS", "Bandwidth", "Member", "Plan", "plan"]

Bandwidth = Literal["full", "low", "audio"]
"""A subscriber's downlink: "full" gets N videos, "low" at most 2, "audio" none."""

LOW_BANDWIDTH_VIDEOS = 2

_BANDWIDTHS = frozenset(get_args(Bandwidth))
_NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """One participant as Last-N sees it.

    ``camera``, ``audio`` and ``screen`` say what it publishes right now: a camera that
    is video-muted, or audio muted by itself or by the chair, counts as not published.
    ``everything`` marks the recorder, which receives every camera, screen and audio
    and publishes nothing (its own flags are ignored).

    Raises:
        ValueError: an unknown ``bandwidth``.
    """

    id: str
    is_chair: bool
    bandwidth: Bandwidth
    camera: bool
    audio: bool
    screen: bool
    everything: bool = False

    def __post_init__(self) -> None:
        if self.bandwidth not in _BANDWIDTHS:
            raise ValueError(f"bandwidth {self.bandwidth!r} is not one of {sorted(_BANDWIDTHS)}")


@dataclass(frozen=True, slots=True)
class Plan:
    """Subscriber id -> the publisher ids whose camera, screen and audio it receives
    (every member is a key), and the cameras that nobody receives."""

    video: Mapping[str, frozenset[str]]
    screen: Mapping[str, frozenset[str]]
    audio: Mapping[str, frozenset[str]]
    paused: frozenset[str]


def plan(
    members: Sequence[Member], *, floor: str | None, speakers: Sequence[str], last_n: int
) -> Plan:
    """Decide who receives what.

    Args:
        members: everyone in the room, the recorder included.
        floor: the member holding the floor, if any.
        speakers: speaker ids, most recent first (`SpeakerDetector.recent`).
        last_n: camera videos per "full" subscriber, pinned ones aside; < 0 for no limit.

    Raises:
        ValueError: two members share an id.
    """
    ordered = sorted(members, key=lambda m: m.id)
    for before, after in itertools.pairwise(ordered):
        if before.id == after.id:
            raise ValueError(f"member {before.id!r} appears twice")
    senders = [m for m in ordered if not m.everything]
    cameras = [m.id for m in senders if m.camera]
    has_camera = set(cameras)
    screens = frozenset(m.id for m in senders if m.screen)
    audio = frozenset(m.id for m in senders if m.audio)

    pinned = [m.id for m in senders if m.is_chair and m.camera]
    if floor in has_camera and floor not in pinned:
        pinned.append(floor)
    # Speakers first (each once), then everyone else by id: the order slots fill in.
    order = dict.fromkeys(s for s in speakers if s in has_camera and s not in pinned)
    order.update(dict.fromkeys(c for c in cameras if c not in pinned))
    ranked = list(order)

    all_cameras = frozenset(cameras)
    video: dict[str, frozenset[str]] = {}
    screen: dict[str, frozenset[str]] = {}
    heard: dict[str, frozenset[str]] = {}
    for member in ordered:
        me = member.id
        if member.everything:
            video[me], screen[me], heard[me] = all_cameras, screens, audio
            continue
        heard[me] = audio - {me}
        if member.bandwidth == "audio":
            video[me] = screen[me] = _NOTHING
            continue
        screen[me] = screens - {me}
        chosen = [p for p in pinned if p != me]
        if member.bandwidth == "low":
            limit = min(last_n, LOW_BANDWIDTH_VIDEOS) if last_n >= 0 else LOW_BANDWIDTH_VIDEOS
        else:
            limit = last_n if last_n >= 0 else len(chosen) + len(ranked)
        free = limit - len(chosen)
        for candidate in ranked:
            if free <= 0:
                break
            if candidate != me:
                chosen.append(candidate)
                free -= 1
        video[me] = frozenset(chosen)

    seen: set[str] = set()
    for received in video.values():
        seen |= received
    return Plan(
        video=MappingProxyType(video),
        screen=MappingProxyType(screen),
        audio=MappingProxyType(heard),
        paused=all_cameras - seen,
    )
