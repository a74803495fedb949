"""Facts about the machine: GPUs through NVML, dense peaks, the environment fingerprint,
and the machine state around a measurement.

May import ``engine.core`` only.
"""
