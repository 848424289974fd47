"""Stage: prove."""
