"""Pieces of ``bench.media``: the pre-encoded clip, aiortc peers, and the systems under test."""
