"""TPM 2.0 structures, quote verification and PCR banks (pure Python; device access lives in ``tpm.device``)."""
