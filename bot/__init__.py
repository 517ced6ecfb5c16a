"""certdesk: the application (configuration, wiring, policy, domain services, delivery)."""

import os

# PTB 22 warns on every RetryAfter unless it may hand out timedeltas; we use timedeltas.
os.environ.setdefault("PTB_TIMEDELTA", "true")
