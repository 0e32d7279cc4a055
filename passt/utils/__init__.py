"""Helpers every layer uses and none owns: errors, atomic files, JSON lines, optional imports,
seeded generators, settings as flags, devices, precision and named registries."""
