"""Linux IMA measurement lists (ascii_runtime_measurements): parser and PCR 10 replay."""
