"""Stage: definition."""
