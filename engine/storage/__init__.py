"""Storing and history: the SQLite results store, how a run ends, documents from other
machines, the quoted reference study, and the history queries and comparisons.

May import ``engine.core`` and ``engine.hardware``.
"""
