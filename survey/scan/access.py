"""How the scan reaches a mail server: one value for the starttls probe and the hellos alike.

The ServerProber (the starttls probe and its retries) and the Enumerator
(the profile's hellos after it) connect to the same servers under the same
rules: the SMTP port, the destination policy, the politeness slots, the
EHLO name, the deadlines and the retry schedule of temporary refusals.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from survey.net.guard import DestinationPolicy
from survey.net.smtp import Timeouts
from survey.scan.politeness import Politeness


@dataclass(frozen=True)
class ServerAccess:
    port: int
    policy: DestinationPolicy
    politeness: Politeness
    ehlo_name: str
    timeouts: Timeouts
    retries: int = 2              # extra attempts after a temporary refusal or a stall
    retry_delay: float = 30.0     # seconds before the first retry, doubling
    turns: trio.Semaphore | None = None   # conversations past the greeting at once
