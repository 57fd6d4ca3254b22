"""The domain of hoinghi: units, accounts, meetings, invitations, attendance.

This package knows nothing about sockets or HTTP; ``web`` and ``signaling``
call into it.
"""

__version__ = "0.1.0"
