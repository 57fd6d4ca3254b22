"""A room whose owner cannot record (the database refuses) closes its sockets with
1011 instead of hanging, and the next join gets a fresh room."""

from __future__ import annotations

from tests.signaling.conftest import CHAIR, SNV


async def test_owner_failure_closes_sockets_and_the_room_comes_back(meeting):
    engine = meeting.api.database.engine
    async with meeting.client(CHAIR) as chair:
        # Take the chat table away (and give it back below: the database is shared).
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE chat_message RENAME TO chat_message_away")
        try:
            await chair.send({"type": "chat", "text": "Mất bản ghi?", "to": "all"})
            while True:  # the ack never comes: the chat could not be recorded
                event = await chair.next_event(within=5)
                if event is None:
                    break
                assert event["type"] != "chat"
        finally:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("ALTER TABLE chat_message_away RENAME TO chat_message")
        assert chair.close_code == 1011
    # A new arrival gets a new owner, which records attendance as before.
    async with meeting.client(SNV) as snv:
        assert snv.participant is not None
        async with meeting.client(CHAIR) as chair:
            assert chair.participant is not None
