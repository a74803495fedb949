"""What a sweep says really ran, taken down as it is said: each note once, in order.

A run's notes come from three places: the sweep itself (the plan's notes, a busy
machine), the model's artifacts (``art.notes``: an ONNX export made or reused, a cached
int8 model, said when a runner first needs them) and each configuration's backend
through its :class:`~engine.backends.PrepareContext` (``ctx.say``: a cached engine
loaded, an FP32 copy run). :class:`NoteTaker` takes what each of them added since it
last looked into the outcome's one list, the list the CLI prints as ``note:`` lines and
the store keeps (engine/storage/notes.py). The sweep looks on every progress line (every
``ctx.say`` is one, so a backend's note follows whatever the artifacts said before it),
before each row lands and when the run ends: a run cut short keeps what was said.
"""

from __future__ import annotations

import threading


class NoteTaker:
    """The outcome's notes (``notes``), fed from lists others append to."""

    def __init__(self, notes: list[str], art_notes: list[str]) -> None:
        self.notes = notes  # holds what the artifacts said before the run already
        self._heard: list[list[str]] = []
        self._read: list[int] = []
        # Progress lines come from a library's own threads too (TensorRT's build monitor).
        self._lock = threading.Lock()
        self.listen(art_notes, len(art_notes))

    def listen(self, said: list[str], read: int = 0) -> None:
        """Take down what ``said`` holds past its first ``read`` notes, now and later."""
        with self._lock:
            self._heard.append(said)
            self._read.append(read)

    def take(self) -> list[str]:
        """Add the notes said since the last look, in order, each once; which were new."""
        with self._lock:
            new: list[str] = []
            for i, said in enumerate(self._heard):
                new += said[self._read[i] :]
                self._read[i] = len(said)
            new = [n for n in dict.fromkeys(new) if n not in self.notes]
            self.notes.extend(new)
            return new
