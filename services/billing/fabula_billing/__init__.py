"""Fabula billing service: plans, quotas, reservations and the usage ledger."""
