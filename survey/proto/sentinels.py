"""The marker values every sans-IO parser here returns, like h11's NEED_DATA.

One set for all parsers, so network code can test ``event is NEED_DATA``
whatever protocol it drives.
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class Sentinel(Enum):
    """A named marker value; compares by identity (an enum, so type checkers narrow on ``is``)."""

    NEED_DATA = "NEED_DATA"
    CLOSED = "CLOSED"

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = Sentinel.NEED_DATA  # feed more bytes, then ask again
CLOSED: Final = Sentinel.CLOSED        # the stream ended cleanly between messages
