"""The embedded SFU: forwards RTP between aiortc peer connections, never transcoding."""
