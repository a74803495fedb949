"""Run the diagnostics as a script: `python -m engine.diagnostics` or `python engine/diagnostics`.

The second form works in a bare environment that has nothing but the standard library and
whichever onnxruntime is installed: Python puts this folder first on sys.path, where modules
such as `probe` or `report` would shadow others, so it is replaced by the repository root.
"""

import os
import sys

if not __package__:
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))

from engine.diagnostics.cli import main  # noqa: E402  (after the sys.path repair)

if __name__ == "__main__":
    sys.exit(main())
