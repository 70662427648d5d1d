"""Stores, encoders, fusion and reranking for Keel. No Temporal imports."""
