"""The receive path the SFU and the recorder share, taken from aiortc's datagram
callback (``aiortc_glue.install_sync_ingest``): what aiortc's receiver does per
packet that a sender needs back (receiver-report statistics, NACK, REMB) and
RTX unwrapping, without aiortc's queue, task wake-up and full packet parse."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiortc import clock
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from . import aiortc_glue as glue
from . import rtp_bytes as rb
from .forwarder import Seen

__all__ = ["Ingest", "spawn"]


class Ingest:
    """The light part of aiortc's receive path for one receiver: statistics for
    receiver reports, RTX unwrap, NACK and REMB to the sender; then ``deliver``
    gets the packet (the SFU forwards it, the recorder reassembles frames)."""

    def __init__(
        self,
        receiver: Any,
        deliver: Callable[[bytes, rb.RtpView], None],
        is_video: bool,
        abs_send_time_id: int | None,
    ) -> None:
        self.receiver = receiver
        self.deliver = deliver
        self.state: glue.ReceiverState | None = None
        self.nack = NackGenerator() if is_video else None
        self.abs_id = abs_send_time_id
        self.rtx: dict[int, tuple[int, int]] = {}  # rtx pt -> (media pt, clock rate)

    def _ready(self) -> glue.ReceiverState | None:
        if self.state is None:
            state = glue.receiver_state(self.receiver)
            if not state.codecs:
                return None  # receive() not called yet
            self.state = state
            for pt, codec in state.codecs.items():
                if codec.mimeType.lower().endswith("/rtx"):
                    apt = int(codec.parameters.get("apt", -1))
                    self.rtx[pt] = (apt, codec.clockRate)
        return self.state

    def on_rtp(self, data: bytes, view: rb.RtpView) -> None:
        state = self._ready()
        if state is None:
            return
        codec = state.codecs.get(view.payload_type)
        if codec is None:
            return
        stats = state.remote_streams.get(view.ssrc)
        if stats is None:
            stats = state.remote_streams[view.ssrc] = StreamStatistics(codec.clockRate)
        seen: Any = Seen(view.sequence, view.timestamp)  # what aiortc reads of a packet
        stats.add(seen)
        rtx = self.rtx.get(view.payload_type)
        if rtx is not None:
            media_ssrc = state.rtx_ssrc.get(view.ssrc)
            if media_ssrc is None or view.payload_end - view.payload_offset < 2:
                return  # a padding-only probe
            data = rb.unwrap_rtx(data, view, rtx[0], media_ssrc)
            view = rb.parse(data)
            seen = Seen(view.sequence, view.timestamp)
        if self.nack is not None and self.nack.add(seen):
            spawn(self.receiver._send_rtcp_nack(view.ssrc, sorted(self.nack.missing)))
        if self.abs_id is not None and state.remb is not None:
            value = rb.find_extension(data, view, self.abs_id)
            if value is not None and len(value) == 3:
                remb = state.remb.add(
                    abs_send_time=int.from_bytes(value, "big"),
                    arrival_time_ms=clock.current_ms(),
                    payload_size=len(data) - view.payload_offset,
                    ssrc=view.ssrc,
                )
                rtcp_ssrc = state.rtcp_ssrc()
                if remb is not None and rtcp_ssrc is not None:
                    spawn(
                        self.receiver._send_rtcp(
                            RtcpPsfbPacket(
                                fmt=RTCP_PSFB_APP,
                                ssrc=rtcp_ssrc,
                                media_ssrc=0,
                                fci=pack_remb_fci(*remb),
                            )
                        )
                    )
        self.deliver(data, view)


_background: set[asyncio.Task[Any]] = set()


def spawn(coro: Any) -> None:
    """Run an RTCP send in the background, keeping a reference until it is done."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
