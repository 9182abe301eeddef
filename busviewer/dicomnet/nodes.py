"""Settings of the local AE and the remote nodes, persisted as JSON in the data folder."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from busviewer.core import paths
from busviewer.core.fileio import atomic_write_text

TRANSPORTS = ("dimse", "dicomweb")
RETRIEVE_METHODS = ("get", "move")
_AET = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable, no backslash, <= 16 chars


class SettingsError(ValueError):
    """Invalid or unreadable network settings; the message says which field and why."""


def check_ae_title(title: str, what: str = "AE title") -> str:
    title = title.strip()
    if not _AET.match(title):
        raise SettingsError(f"{what} {title!r} must be 1-16 printable characters without a backslash")
    return title


@dataclass(frozen=True)
class LocalAE:
    """This workstation: its AE title and the port of its storage listener."""

    ae_title: str = "BUSVIEWER"
    port: int = 11112
    host: str = "0.0.0.0"
    listen_on_start: bool = False


@dataclass(frozen=True)
class RemoteNode:
    """A PACS: DIMSE (``ae_title``@``host``:``port``) or DICOMweb (``url``)."""

    name: str
    ae_title: str = ""
    host: str = ""
    port: int = 104
    transport: str = "dimse"
    url: str = ""
    retrieve: str = "get"
    timeout_s: float = 30.0

    def describe(self) -> str:
        """How messages name the peer, e.g. ``PACS 'main' (ORTHANC@10.0.0.5:4242)``."""
        where = self.url if self.transport == "dicomweb" else f"{self.ae_title}@{self.host}:{self.port}"
        return f"PACS {self.name!r} ({where})"

    def checked(self) -> RemoteNode:
        """The node, or SettingsError naming the field that is wrong."""
        if not self.name.strip():
            raise SettingsError("a node needs a name")
        if self.transport not in TRANSPORTS:
            raise SettingsError(f"node {self.name!r}: transport must be one of {', '.join(TRANSPORTS)}")
        if self.retrieve not in RETRIEVE_METHODS:
            raise SettingsError(f"node {self.name!r}: retrieve must be one of {', '.join(RETRIEVE_METHODS)}")
        if not self.timeout_s > 0:
            raise SettingsError(f"node {self.name!r}: timeout must be > 0 s")
        if self.transport == "dicomweb":
            if not re.match(r"^https?://", self.url):
                raise SettingsError(f"node {self.name!r}: DICOMweb URL must start with http:// or https://")
            return self
        check_ae_title(self.ae_title, f"node {self.name!r}: AE title")
        if not self.host.strip():
            raise SettingsError(f"node {self.name!r}: host is empty")
        if not 0 < int(self.port) < 65536:
            raise SettingsError(f"node {self.name!r}: port {self.port} is not 1-65535")
        return self


@dataclass(frozen=True)
class NetworkSettings:
    local: LocalAE = field(default_factory=LocalAE)
    nodes: tuple[RemoteNode, ...] = ()

    def node(self, name: str) -> RemoteNode:
        for n in self.nodes:
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes) or "none configured"
        raise SettingsError(
            f"no PACS node named {name!r} (known: {known}); add one with "
            "`busviewer pacs node add` or Settings > PACS nodes"
        )

    def with_node(self, node: RemoteNode) -> NetworkSettings:
        """These settings with ``node`` added (or replacing the node of the same name)."""
        node = node.checked()
        return replace(self, nodes=tuple(n for n in self.nodes if n.name != node.name) + (node,))

    def without_node(self, name: str) -> NetworkSettings:
        self.node(name)
        return replace(self, nodes=tuple(n for n in self.nodes if n.name != name))


def settings_path() -> Path:
    return paths.data_dir() / "network.json"


def load_settings(path: Path | None = None) -> NetworkSettings:
    """The saved settings (defaults when none are saved yet)."""
    path = path or settings_path()
    if not path.is_file():
        return NetworkSettings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        local = LocalAE(**raw.get("local", {}))
        nodes = tuple(RemoteNode(**n).checked() for n in raw.get("nodes", []))
    except (OSError, ValueError, TypeError) as exc:
        raise SettingsError(f"{path}: cannot read the network settings ({exc})") from exc
    check_ae_title(local.ae_title, "local AE title")
    return NetworkSettings(local, nodes)


def save_settings(settings: NetworkSettings, path: Path | None = None) -> Path:
    """Write the settings atomically; returns the file."""
    check_ae_title(settings.local.ae_title, "local AE title")
    if not 0 < int(settings.local.port) < 65536:
        raise SettingsError(f"local port {settings.local.port} is not 1-65535")
    for n in settings.nodes:
        n.checked()
    path = path or settings_path()
    data = {"local": asdict(settings.local), "nodes": [asdict(n) for n in settings.nodes]}
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path
