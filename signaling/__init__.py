"""The real-time side: the signaling protocol (sans-I/O), rooms, the WebSocket
transport, the media-engine seam and the Python client."""
