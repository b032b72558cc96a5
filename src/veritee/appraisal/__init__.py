"""Appraisal of platform evidence against compiled policies; findings and EAR attestation results."""
