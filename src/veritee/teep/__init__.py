"""TEEP (draft-ietf-teep-protocol): messages and the sans-I/O TAM and Agent state machines."""
