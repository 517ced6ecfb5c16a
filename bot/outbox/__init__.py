"""The outbox: typed messages queued in the transaction that caused them, and the worker that
delivers them."""
