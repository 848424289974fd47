"""Stage: graph — node structures and iterative topological order."""
