"""Connectors, parsing, chunking, change detection and entity extraction (no Temporal)."""
