"""Plexus aggregator."""
