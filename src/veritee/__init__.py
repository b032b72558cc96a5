"""veritee: platform integrity (TPM/IMA), TEEP Trusted Application Manager and crash-time fail-over."""

__version__ = "0.1.0"
