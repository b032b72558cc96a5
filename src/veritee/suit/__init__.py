"""SUIT manifests (draft-ietf-suit-manifest, trust-domains, report): envelope model, sans-I/O processor, reports."""
