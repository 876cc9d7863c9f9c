"""Runnable example pipelines (see docs/)."""
