"""TCG PC Client firmware event logs (binary_bios_measurements): parser, decoders and PCR replay."""
