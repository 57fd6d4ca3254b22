from tests.signaling.conftest import CHAIR, SNV


async def test_two_sites_join_and_chat(meeting):
    async with meeting.client(CHAIR) as chair, meeting.client(SNV) as snv:
        joined = await chair.wait_for("participant_joined")
        assert joined["participant"]["unit"] == SNV
        await snv.request("chat", text="Xin chào Ủy ban 🇻🇳", to="all")
        got = await chair.wait_for("chat")
        assert got["text"] == "Xin chào Ủy ban 🇻🇳"
