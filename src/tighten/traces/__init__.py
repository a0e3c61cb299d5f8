"""Traces: the session model, input formats and ingestion."""
