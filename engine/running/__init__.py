"""Running and timing: the plan of a sweep, the timing loop, one point's measurement,
the sweep, auto mode, device locks, the launchers (inline or a worker process) and the
command that reproduces a run.

May import every layer below it: ``core``, ``hardware``, ``diagnostics``, ``artifacts``,
``backends`` and ``storage``.
"""
