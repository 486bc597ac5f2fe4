"""TLS for every gRPC server and client, from ``RAVEN_TLS_*`` settings; plaintext when none are set.

Servers: ``ServerTLS`` (certificate chain + key, and a client CA that turns on mTLS: client certificates
are then required and verified). The files are read again when they change on disk (cert-manager renews
them in place), so a rotation needs no restart: gRPC asks for the configuration on every new connection.

Clients: ``ClientTLS`` (root CA, optional client certificate for mTLS servers, optional expected server
name); ``aio_channel`` / ``sync_channel`` are the one way every Raven client opens a channel.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from common.logging import get_logger
from common.settings import Settings

log = get_logger("tls")

ChannelOptions = Sequence[tuple[str, Any]]


class TLSFileError(OSError):
    """A configured certificate or key file cannot be read; the message names the setting and the file."""


def read_pem(path: str, setting: str) -> bytes:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise TLSFileError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise TLSFileError(f"{setting}: {path} is not a PEM file")
    return data


def _stamp(paths: Sequence[str]) -> tuple[tuple[int, int, int], ...]:
    """Changes when any file is replaced or rewritten (a k8s secret update swaps a symlink)."""
    stamps = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stamps.append((0, 0, 0))
            continue
        stamps.append((st.st_mtime_ns, st.st_ino, st.st_size))
    return tuple(stamps)


@dataclass
class ServerTLS:
    """The server's certificate chain and key; ``client_ca_file`` set = mutual TLS."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stamp: tuple[tuple[int, int, int], ...] = field(default=(), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerTLS | None:
        if not settings.tls_cert_file:
            return None
        return cls(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)

    @property
    def mutual(self) -> bool:
        return bool(self.client_ca_file)

    def _paths(self) -> list[str]:
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p]

    def _configuration(self) -> Any:
        chain = read_pem(self.cert_file, "RAVEN_TLS_CERT_FILE")
        key = read_pem(self.key_file, "RAVEN_TLS_KEY_FILE")
        client_ca = read_pem(self.client_ca_file, "RAVEN_TLS_CLIENT_CA_FILE") if self.mutual else None
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=client_ca)

    def _fetch(self) -> Any:
        """gRPC calls this on each handshake: a new configuration when the files changed, else None."""
        with self._lock:
            stamp = _stamp(self._paths())
            if stamp == self._stamp:
                return None
            try:
                configuration = self._configuration()
            except TLSFileError as exc:  # mid-rotation (half written): keep serving the previous certificate
                log.warning("tls files unreadable; keeping the current certificate", error=str(exc))
                return None
            self._stamp = stamp
            log.info("tls certificate loaded", cert_file=self.cert_file, mutual=self.mutual)
            return configuration

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that follow the files; raises ``TLSFileError`` if they cannot be read now."""
        with self._lock:
            self._stamp = _stamp(self._paths())
            initial = self._configuration()
        return grpc.dynamic_ssl_server_credentials(
            initial, self._fetch, require_client_authentication=self.mutual
        )


@dataclass(frozen=True)
class ClientTLS:
    """What a client needs to reach TLS servers: their root CA, and a certificate when they ask for one."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientTLS | None:
        if not settings.tls_ca_file:
            return None
        return cls(
            settings.tls_ca_file,
            settings.tls_client_cert_file,
            settings.tls_client_key_file,
            settings.tls_server_name,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        root = read_pem(self.ca_file, "RAVEN_TLS_CA_FILE")
        if bool(self.cert_file) != bool(self.key_file):
            raise TLSFileError("set RAVEN_TLS_CLIENT_CERT_FILE and RAVEN_TLS_CLIENT_KEY_FILE together")
        chain = read_pem(self.cert_file, "RAVEN_TLS_CLIENT_CERT_FILE") if self.cert_file else None
        key = read_pem(self.key_file, "RAVEN_TLS_CLIENT_KEY_FILE") if self.key_file else None
        return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)

    def options(self) -> list[tuple[str, Any]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def aio_channel(address: str, tls: ClientTLS | None = None, options: ChannelOptions = ()) -> grpc.aio.Channel:
    """A secure channel when ``tls`` is given, else plaintext (the embedded default)."""
    if tls is None:
        return grpc.aio.insecure_channel(address, options=list(options))
    return grpc.aio.secure_channel(address, tls.credentials(), options=[*options, *tls.options()])


def sync_channel(address: str, tls: ClientTLS | None = None, options: ChannelOptions = ()) -> grpc.Channel:
    """The blocking twin of ``aio_channel`` (scripts, health waits, sync tests)."""
    if tls is None:
        return grpc.insecure_channel(address, options=list(options))
    return grpc.secure_channel(address, tls.credentials(), options=[*options, *tls.options()])
