"""Stage: simplify."""
