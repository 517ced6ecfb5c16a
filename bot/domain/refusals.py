"""The refusal every case rule raises (its own module, so the rule modules can share it)."""

from __future__ import annotations


class CaseRefused(Exception):
    """An action the rules refuse: `key` names the catalog text saying why, `args_` fill it."""

    def __init__(self, key: str, **args: object) -> None:
        super().__init__(key)
        self.key, self.args_ = key, args


__all__ = ["CaseRefused"]
