"""Orchestration with I/O: TAM, verifier, node monitor, fail-over."""
