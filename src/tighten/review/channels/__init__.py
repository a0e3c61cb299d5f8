"""Channels: where the digest goes and replies come from (plugins, one module each)."""
