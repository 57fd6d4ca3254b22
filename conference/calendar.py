"""iCalendar (RFC 5545) files for meetings, one per invited unit with its join link."""

from __future__ import annotations

from datetime import datetime

from icalendar import Calendar, Event

from .models import Meeting, MeetingStatus
from .timezone import LOCAL_ZONE, utcnow

__all__ = ["meeting_ics"]

PRODID = "-//hoinghi//hoinghi 1.0//VI"


def meeting_ics(
    meeting: Meeting,
    *,
    chair_name: str,
    unit_name: str,
    join_url: str | None,
    host: str,
    now: datetime | None = None,
) -> bytes:
    """An ``.ics`` calendar with the meeting as one event.

    ``UID`` is stable per meeting and ``SEQUENCE`` is the meeting's revision, so a
    calendar client updates the event on reschedule (RFC 5545 §3.8.7.4) and
    removes it when ``STATUS:CANCELLED`` arrives.
    """
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"meeting-{meeting.id}@{host}")
    event.add("sequence", meeting.revision)
    event.add("dtstamp", now or utcnow())
    event.add("dtstart", meeting.starts_at.astimezone(LOCAL_ZONE))
    event.add("dtend", meeting.ends_at.astimezone(LOCAL_ZONE))
    event.add("summary", meeting.title)
    lines = [f"Chủ trì: {chair_name}", f"Đơn vị: {unit_name}"]
    if meeting.agenda:
        lines.append("Nội dung:")
        lines.extend(f"{i}. {item}" for i, item in enumerate(meeting.agenda, start=1))
    if join_url:
        lines.append(f"Tham gia: {join_url}")
        event.add("url", join_url)
        event.add("location", join_url)
    event.add("description", "\n".join(lines))
    event.add("status", "CANCELLED" if meeting.status is MeetingStatus.CANCELLED else "CONFIRMED")
    cal.add_component(event)
    cal.add_missing_timezones()
    return bytes(cal.to_ical())
