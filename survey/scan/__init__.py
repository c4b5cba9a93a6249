"""The scan pipeline: targets, scheduling, politeness, per-server dedup, resume."""
