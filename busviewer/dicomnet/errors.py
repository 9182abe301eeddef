"""Errors from a DICOM peer, always naming the peer."""

from __future__ import annotations


class PeerError(Exception):
    """A DICOM or DICOMweb peer failed; ``str(e)`` names the peer and the reason."""

    def __init__(self, peer: str, reason: str) -> None:
        self.peer = peer
        self.reason = reason
        super().__init__(f"{peer}: {reason}")

    def __reduce__(self) -> tuple:  # picklable (crosses threads and processes)
        return (type(self), (self.peer, self.reason))


class RetrieveIncomplete(PeerError):
    """A retrieve ended early (peer abort, failure or cancel); ``received`` files are whole."""

    def __init__(self, peer: str, reason: str, received: int = 0, expected: int | None = None) -> None:
        super().__init__(peer, reason)
        self.received = received
        self.expected = expected

    def __reduce__(self) -> tuple:
        return (type(self), (self.peer, self.reason, self.received, self.expected))
