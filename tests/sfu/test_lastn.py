"""signaling.sfu.lastn: a 30-site meeting worked by hand, edge cases, and properties
that hold for any room."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.sfu.lastn import Member, Plan, plan

PROPS = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def member(id: str, **kw: Any) -> Member:
    fields: dict[str, Any] = {
        "is_chair": False,
        "bandwidth": "full",
        "camera": True,
        "audio": True,
        "screen": False,
    }
    return Member(id=id, **(fields | kw))


# --- a 30-site meeting ------------------------------------------------------------------

SITES = [f"s{i:02}" for i in range(30)]
CHAIR, FLOOR, SPEAKERS = "s00", "s05", ["s10", "s11", "s12"]
LOW, AUDIO_ONLY, MUTED, SCREEN = {"s25", "s26"}, {"s27", "s28"}, {"s20", "s21"}, "s07"


def meeting(*, recorder: bool) -> list[Member]:
    members = [
        member(
            site,
            is_chair=site == CHAIR,
            bandwidth="low" if site in LOW else "audio" if site in AUDIO_ONLY else "full",
            audio=site not in MUTED,
            screen=site == SCREEN,
        )
        for site in SITES
    ]
    if recorder:
        # Its own flags are ignored: it publishes nothing.
        members.append(member("rec", everything=True, bandwidth="audio", is_chair=True))
    return members


def meeting_plan(*, recorder: bool = False) -> Plan:
    return plan(meeting(recorder=recorder), floor=FLOOR, speakers=SPEAKERS, last_n=4)


def test_full_subscribers_see_chair_floor_and_the_two_latest_speakers() -> None:
    p = meeting_plan()
    usual = {CHAIR, FLOOR, "s10", "s11"}
    for site in SITES:
        if site in LOW | AUDIO_ONLY:
            continue
        expected = {
            CHAIR: {FLOOR, "s10", "s11", "s12"},  # its own slot goes to the next speaker
            FLOOR: {CHAIR, "s10", "s11", "s12"},
            "s10": {CHAIR, FLOOR, "s11", "s12"},
            "s11": {CHAIR, FLOOR, "s10", "s12"},
        }.get(site, usual)
        assert p.video[site] == expected, site
        assert len(p.video[site]) == 4


def test_low_bandwidth_subscribers_see_only_chair_and_floor() -> None:
    p = meeting_plan()
    for site in LOW:
        assert p.video[site] == {CHAIR, FLOOR}
        assert p.screen[site] == {SCREEN}


def test_audio_only_subscribers_get_no_video_and_every_unmuted_voice() -> None:
    p = meeting_plan()
    for site in AUDIO_ONLY:
        assert p.video[site] == p.screen[site] == frozenset()
        assert p.audio[site] == set(SITES) - MUTED - {site}


def test_everyone_hears_every_unmuted_site_but_itself() -> None:
    p = meeting_plan()
    for site in SITES:
        assert p.audio[site] == set(SITES) - MUTED - {site}


def test_every_video_subscriber_sees_the_screen_but_its_sharer() -> None:
    p = meeting_plan()
    assert p.screen[SCREEN] == frozenset()
    for site in set(SITES) - AUDIO_ONLY - {SCREEN}:
        assert p.screen[site] == {SCREEN}


def test_cameras_nobody_watches_are_paused() -> None:
    p = meeting_plan()
    watched = {CHAIR, FLOOR, "s10", "s11", "s12"}  # s12: by the chair, floor, s10 and s11
    assert p.paused == set(SITES) - watched
    assert len(p.paused) == 25


def test_the_recorder_receives_everything_and_publishes_nothing() -> None:
    p = meeting_plan(recorder=True)
    assert p.video["rec"] == set(SITES)
    assert p.screen["rec"] == {SCREEN}
    assert p.audio["rec"] == set(SITES) - MUTED
    assert p.paused == frozenset()  # it watches every camera
    for site in SITES:
        assert "rec" not in p.video[site] | p.screen[site] | p.audio[site]
    # And it changes nobody else's view (it is flagged chair here, to no effect).
    without = meeting_plan()
    for site in SITES:
        assert (p.video[site], p.screen[site], p.audio[site]) == (
            without.video[site],
            without.screen[site],
            without.audio[site],
        )


# --- edge cases ---------------------------------------------------------------------------


def test_without_speakers_the_free_slots_fill_in_id_order() -> None:
    members = [member(i, is_chair=i == "c") for i in ("c", "f", "a", "b", "d", "e")]
    p = plan(members, floor="f", speakers=[], last_n=4)
    assert p.video["e"] == {"c", "f", "a", "b"}
    assert p.video["a"] == {"c", "f", "b", "d"}
    assert p.paused == {"e"}


def test_only_published_cameras_count() -> None:
    members = [
        member("chair", is_chair=True, camera=False),
        member("floor", camera=False),
        member("x"),
        member("y"),
        member("z", camera=False),
        member("w"),
    ]
    p = plan(members, floor="floor", speakers=["z", "y", "ghost"], last_n=2)
    assert p.video["chair"] == {"y", "w"}  # z has no camera, ghost is not here; then by id
    assert p.video["w"] == {"y", "x"}
    assert p.paused == frozenset()
    assert "chair" not in p.paused


def test_pinned_videos_are_kept_beyond_the_limit() -> None:
    members = [member("c1", is_chair=True), member("c2", is_chair=True)] + [
        member(i, bandwidth="low" if i == "lo" else "full") for i in ("f", "s", "t", "lo")
    ]
    p = plan(members, floor="f", speakers=["s"], last_n=1)
    assert p.video["t"] == {"c1", "c2", "f"}
    assert p.video["lo"] == {"c1", "c2", "f"}
    assert p.video["c1"] == {"c2", "f"}
    assert p.paused == {"lo"} | {"s", "t"}


@pytest.mark.parametrize(
    ("last_n", "full", "low"),
    [
        (-1, {"c", "f", "a", "b", "d"}, {"c", "f"}),
        (0, {"c", "f"}, {"c", "f"}),
        (3, {"c", "f", "b"}, {"c", "f"}),
        (10, {"c", "f", "a", "b", "d"}, {"c", "f"}),
    ],
)
def test_last_n_limits_full_subscribers_and_low_ones_to_two(
    last_n: int, full: set[str], low: set[str]
) -> None:
    members = [member("c", is_chair=True), member("f"), member("a"), member("b"), member("d")]
    members += [member("me"), member("lo", bandwidth="low")]
    p = plan(members, floor="f", speakers=["b"], last_n=last_n)
    assert p.video["me"] == full | ({"lo"} if last_n < 0 or last_n > 5 else set())
    assert p.video["lo"] == low


def test_low_bandwidth_fills_its_two_slots_from_speakers_without_a_floor() -> None:
    members = [member(i) for i in ("a", "b", "c", "d")] + [member("lo", bandwidth="low")]
    p = plan(members, floor=None, speakers=["d", "c", "b"], last_n=-1)
    assert p.video["lo"] == {"d", "c"}


def test_members_must_have_distinct_ids() -> None:
    with pytest.raises(ValueError, match="twice"):
        plan([member("a"), member("b"), member("a")], floor=None, speakers=[], last_n=4)


def test_unknown_bandwidth_is_refused() -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        member("a", bandwidth="medium")


def test_plan_is_immutable() -> None:
    p = meeting_plan()
    with pytest.raises(TypeError):
        p.video["s01"] = frozenset()  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.paused = frozenset()  # type: ignore[misc]


# --- properties ---------------------------------------------------------------------------

IDS = [chr(ord("a") + i) for i in range(12)]


@st.composite
def rooms(draw: st.DrawFn) -> tuple[list[Member], str | None, list[str], int]:
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, min_size=1, max_size=12))
    members = [
        Member(
            id=i,
            is_chair=draw(st.booleans()) and draw(st.booleans()),
            bandwidth=draw(st.sampled_from(["full", "full", "low", "audio"])),
            camera=draw(st.booleans()),
            audio=draw(st.booleans()),
            screen=draw(st.booleans()) and draw(st.booleans()),
            everything=draw(st.integers(0, 9)) == 0,
        )
        for i in ids
    ]
    floor = draw(st.none() | st.sampled_from([*IDS, "ghost"]))
    speakers = draw(st.lists(st.sampled_from([*IDS, "ghost"]), max_size=8))
    return members, floor, speakers, draw(st.integers(-1, 6))


Room = tuple[list[Member], str | None, list[str], int]


@PROPS
@given(rooms())
def test_plan_invariants(room: Room) -> None:
    members, floor, speakers, last_n = room
    p = plan(members, floor=floor, speakers=speakers, last_n=last_n)
    senders = [m for m in members if not m.everything]
    cameras = {m.id for m in senders if m.camera}
    screens = {m.id for m in senders if m.screen}
    voices = {m.id for m in senders if m.audio}
    pinned = {m.id for m in senders if m.is_chair and m.camera} | ({floor} & cameras)
    spoken = list(dict.fromkeys(s for s in speakers if s in cameras))

    def rank(c: str) -> tuple[int, str]:
        return (spoken.index(c), "") if c in spoken else (len(spoken), c)

    ids = sorted(m.id for m in members)
    assert list(p.video) == list(p.screen) == list(p.audio) == ids
    received: set[str] = set()
    for m in members:
        me, video = m.id, p.video[m.id]
        received |= video
        if m.everything:
            assert video == cameras
            assert p.screen[me] == screens
            assert p.audio[me] == voices
            continue
        assert me not in video | p.screen[me] | p.audio[me]
        assert p.audio[me] == voices - {me}
        if m.bandwidth == "audio":
            assert video == p.screen[me] == frozenset()
            continue
        assert p.screen[me] == screens - {me}
        assert video <= cameras
        mine_pinned = pinned - {me}
        assert mine_pinned <= video
        limit = 2 if m.bandwidth == "low" else len(cameras) if last_n < 0 else last_n
        if m.bandwidth == "low" and last_n >= 0:
            limit = min(last_n, 2)
        others = cameras - {me} - mine_pinned
        assert len(video) == len(mine_pinned) + min(max(limit - len(mine_pinned), 0), len(others))
        # Every free slot went to a better-ranked camera than any left out.
        chosen, left = video - mine_pinned, others - video
        if chosen and left:
            assert max(map(rank, chosen)) < min(map(rank, left))
    assert p.paused == cameras - received
    assert not p.paused & received


@PROPS
@given(rooms(), st.randoms(use_true_random=False))
def test_plan_does_not_depend_on_member_order(room: Room, rnd: random.Random) -> None:
    members, floor, speakers, last_n = room
    shuffled = list(members)
    rnd.shuffle(shuffled)
    first = plan(members, floor=floor, speakers=speakers, last_n=last_n)
    again = plan(shuffled, floor=floor, speakers=speakers, last_n=last_n)
    assert first == again
    assert list(first.video) == list(again.video)
