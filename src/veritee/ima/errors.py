"""Errors of the IMA package, each a subclass of one of the project's families."""

from __future__ import annotations

from veritee.errors import DecodeError, DigestMismatchError, SignatureError


class ImaLogError(DecodeError):
    """A measurement-list line that is not well-formed. ``line`` is its 0-based line number in the whole list."""

    def __init__(self, message: str, *, line: int) -> None:
        self.line = line
        super().__init__(f"IMA measurement list line {line}: {message}", offset=line)


class TemplateHashMismatchError(DigestMismatchError):
    """The template hash logged on a line is not the hash of that line's template data: the line was edited."""

    def __init__(self, message: str, *, line: int) -> None:
        self.line = line
        super().__init__(f"IMA measurement list line {line}: {message}")


class ImaSignatureFormatError(DecodeError):
    """An ``security.ima`` signature blob (evm_ima_xattr_data) that is not well-formed."""


class ImaSignatureError(SignatureError):
    """An IMA file signature that does not verify over the measured file digest."""
