"""The small family of errors a user can cause or meet.

Each carries what happened, why, and what to do; the CLI maps the class to an exit
code and a page shows it with ``st.error``. Anything else escaping is our bug.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base: a message a user can act on. ``exit_code`` is what the CLI returns."""

    exit_code = 1
    row_status = "failed"  # what a sweep records for a point this error stops

    def __init__(self, what: str, why: str = "", fix: str = "") -> None:
        self.what, self.why, self.fix = what, why, fix
        super().__init__(self.user_message())

    def user_message(self) -> str:
        # "what: why." keeps names (files, models) exactly as given, in one sentence.
        text = self.what.rstrip(".")
        if self.why:
            text += ": " + self.why.rstrip(".")
        parts = [text + "."]
        if self.fix:
            parts.append("Fix: " + self.fix)
        return " ".join(parts)


class BadInput(EngineError):
    """Input or a combination that can never work (exit 2)."""

    exit_code = 2


class Unavailable(EngineError):
    """A backend or device that cannot run on this machine (exit 3)."""

    exit_code = 3


class ProviderFallback(Unavailable):
    """ONNX Runtime ran (part of) the graph somewhere other than requested."""


class NotApplicable(Unavailable):
    """A setting that cannot apply to this model (e.g. a CUDA graph of a graph with CPU
    nodes): the point is skipped with the reason, never counted as a failure."""

    row_status = "skipped"


class ParityError(EngineError):
    """Outputs of a backend disagree with the reference beyond tolerance."""

    exit_code = 4
