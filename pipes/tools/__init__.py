"""Tools built on tasks (ranges and the like)."""
