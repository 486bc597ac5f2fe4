"""ravenctl's TLS options: the servers' root CA and, for mTLS servers, a client certificate."""

from __future__ import annotations

from typing import Annotated

import typer

from common.tls import ClientTLS
from services.cli.context import fail

CaFile = Annotated[
    str,
    typer.Option(
        "--ca-file",
        envvar="RAVEN_TLS_CA_FILE",
        show_default=False,
        help="root CA (PEM) of TLS servers; without it ravenctl speaks plaintext",
    ),
]
ClientCert = Annotated[
    str,
    typer.Option(
        "--client-cert",
        envvar="RAVEN_TLS_CLIENT_CERT_FILE",
        show_default=False,
        help="client certificate chain (PEM) for servers that require one (mTLS)",
    ),
]
ClientKey = Annotated[
    str,
    typer.Option(
        "--client-key", envvar="RAVEN_TLS_CLIENT_KEY_FILE", show_default=False, help="its private key (PEM)"
    ),
]
ServerName = Annotated[
    str,
    typer.Option(
        "--tls-server-name",
        envvar="RAVEN_TLS_SERVER_NAME",
        show_default=False,
        help="name expected in the server certificate, when it differs from the address host",
    ),
]


def client_tls(ca_file: str, client_cert: str, client_key: str, server_name: str) -> ClientTLS | None:
    """The options as one ``ClientTLS`` (None = plaintext); a combination that cannot work exits 2."""
    if bool(client_cert) != bool(client_key):
        raise fail("--client-cert and --client-key go together")
    if not ca_file:
        if client_cert or server_name:
            raise fail("--client-cert and --tls-server-name need --ca-file (RAVEN_TLS_CA_FILE)")
        return None
    return ClientTLS(ca_file, client_cert, client_key, server_name)
