"""What every part of a policy profile shares: strict models and keyed validation errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ProfileError(ValueError):
    """A profile that cannot be used; str() is one line `FILE: KEY: reason`."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file, self.key, self.reason = file, key, reason


class KeyedError(ValueError):
    """A validation failure that knows which key (relative to the model) is wrong."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
