"""Scheduled work: deadline warnings and escalations, the daily digest, certificate reminders."""
