"""Values and options: what to run and what was measured, and the rules every layer shares.

Owns the error family, text sanitising, safe file writing, paths, hashes, backend options,
the config and result dataclasses and their rows, devices, size limits, noise (stability)
and parity. The lowest layer: it imports nothing else of ``engine``.
"""
