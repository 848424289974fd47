"""Stage: derive."""
