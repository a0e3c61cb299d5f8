"""Signals: per-session observations of friction and delight, metrics and the friction
score."""
