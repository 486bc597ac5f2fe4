"""TLS checks of the rendered manifests, used by scripts/check_k8s.py.

cert-manager's ``Certificate`` has no schema in kubernetes-validate, so ``check_certificate`` checks its
shape explicitly (as check_k8s.py does for KEDA). ``check_tls`` checks that TLS is wired end to end: every
``RAVEN_TLS_*`` file is a key of a mounted Secret that a rendered Certificate produces; when a server speaks
TLS, every Raven gRPC client (the other server, the workers) trusts a CA, probes use the plaintext health
port (kubelet's gRPC probe cannot speak TLS), the Service no longer says h2c; a server that asks for client
certificates gets one from every client; and no pod but the server a certificate belongs to mounts its key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import Any

Obj = dict[str, Any]
EnvOf = Callable[[Obj, tuple[Obj, ...]], dict[str, str | None]]

CERTIFICATE = ("cert-manager.io/v1", "Certificate")
SERVERS = ("training-run", "trained-model")
CLIENTS = (*SERVERS, "trainer-worker")
CERT_KEYS = ("tls.crt", "tls.key", "ca.crt")  # what cert-manager writes into a Certificate's Secret
SERVER_FILES = ("RAVEN_TLS_CERT_FILE", "RAVEN_TLS_KEY_FILE", "RAVEN_TLS_CLIENT_CA_FILE")
CLIENT_FILES = ("RAVEN_TLS_CA_FILE", "RAVEN_TLS_CLIENT_CERT_FILE", "RAVEN_TLS_CLIENT_KEY_FILE")
CERTIFICATE_SPEC = {
    "secretName",
    "issuerRef",
    "dnsNames",
    "ipAddresses",
    "uris",
    "commonName",
    "duration",
    "renewBefore",
    "privateKey",
    "usages",
    "isCA",
    "subject",
    "secretTemplate",
    "revisionHistoryLimit",
    "emailAddresses",
}
USAGES = {
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
}
GO_DURATION = re.compile(r"(\d+(\.\d+)?(h|m|s|ms))+")


def _kn(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def check_certificate(obj: Obj) -> list[str]:
    """Shape of a cert-manager ``Certificate`` (cert-manager.io/v1)."""
    where = _kn(obj)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [f"{where}: no spec"]
    p = [f"{where}: unknown spec field {k!r}" for k in sorted(set(spec) - CERTIFICATE_SPEC)]
    if not isinstance(spec.get("secretName"), str) or not spec.get("secretName"):
        p.append(f"{where}: spec.secretName must name the Secret to write")
    issuer = spec.get("issuerRef")
    if not isinstance(issuer, dict) or not isinstance(issuer.get("name"), str) or not issuer.get("name"):
        p.append(f"{where}: spec.issuerRef.name is required")
    elif issuer.get("kind", "Issuer") not in ("Issuer", "ClusterIssuer") and "group" not in issuer:
        p.append(f"{where}: issuerRef.kind {issuer.get('kind')!r} needs an external issuer group")
    names = spec.get("dnsNames") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        p.append(f"{where}: dnsNames must be a list of names")
    if not names and not spec.get("ipAddresses") and not spec.get("commonName"):
        p.append(f"{where}: no dnsNames, ipAddresses or commonName")
    for key in ("duration", "renewBefore"):
        if key in spec and not GO_DURATION.fullmatch(str(spec[key])):
            p.append(f"{where}: {key} {spec[key]!r} is not a duration like 2160h")
    p += [f"{where}: unknown usage {u!r}" for u in spec.get("usages") or [] if u not in USAGES]
    key = spec.get("privateKey") or {}
    if key.get("algorithm", "RSA") not in ("RSA", "ECDSA", "Ed25519"):
        p.append(f"{where}: privateKey.algorithm {key.get('algorithm')!r}")
    if key.get("rotationPolicy", "Always") not in ("Always", "Never"):
        p.append(f"{where}: privateKey.rotationPolicy {key.get('rotationPolicy')!r}")
    return p


def probe_port(env: dict[str, str | None], grpc_port: int) -> int:
    """The port kubelet's gRPC probes must use: the plaintext health port when the server speaks TLS."""
    if env.get("RAVEN_TLS_CERT_FILE"):
        return int(env.get("RAVEN_HEALTH_PORT") or 0)
    return grpc_port


def _deployment(objs: tuple[Obj, ...], name: str) -> Obj | None:
    return next((o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == name), None)


def _main(dep: Obj) -> Obj:
    return dict(dep["spec"]["template"]["spec"]["containers"][0])


def _secret_files(dep: Obj, container: Obj) -> Iterator[tuple[str, str, str]]:
    """(file path, Secret name, key) for every file a Secret volume puts into the container."""
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"].get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        secret = (volumes.get(mount["name"]) or {}).get("secret")
        if not secret or mount.get("subPath"):
            continue
        items = secret.get("items")
        pairs = [(i["path"], i["key"]) for i in items] if items else [(k, k) for k in CERT_KEYS]
        for path, key in pairs:
            yield str(PurePosixPath(mount["mountPath"]) / path), secret["secretName"], key


def check_tls(objs: tuple[Obj, ...], env_of: EnvOf) -> list[str]:
    certificates = {
        o["spec"].get("secretName"): o
        for o in objs
        if (o.get("apiVersion"), o.get("kind")) == CERTIFICATE and isinstance(o.get("spec"), dict)
    }
    p: list[str] = []
    deployments = {name: dep for name in CLIENTS if (dep := _deployment(objs, name)) is not None}
    envs = {name: env_of(_main(dep), objs) for name, dep in deployments.items()}
    tls_servers = [n for n in SERVERS if envs.get(n, {}).get("RAVEN_TLS_CERT_FILE")]
    mutual = [n for n in tls_servers if envs[n].get("RAVEN_TLS_CLIENT_CA_FILE")]
    for name, dep in deployments.items():
        where, env = _kn(dep), envs[name]
        files = {path: (secret, key) for path, secret, key in _secret_files(dep, _main(dep))}
        own_key = env.get("RAVEN_TLS_KEY_FILE")
        for setting in (*SERVER_FILES, *CLIENT_FILES):
            path = env.get(setting)
            if not path:
                continue
            if path not in files:
                p.append(f"{where}: {setting}={path} is not a file of a mounted Secret")
            elif files[path][0] not in certificates:
                p.append(f"{where}: {setting} is in Secret {files[path][0]!r}, which no Certificate makes")
        for path, (secret, key) in files.items():
            if key == "tls.key" and secret in certificates and path != own_key:
                p.append(f"{where}: mounts the private key of Secret {secret!r}, not its own certificate")
        if tls_servers and not env.get("RAVEN_TLS_CA_FILE"):
            p.append(f"{where}: {', '.join(tls_servers)} speak TLS but RAVEN_TLS_CA_FILE is not set")
        if mutual and not env.get("RAVEN_TLS_CLIENT_CERT_FILE"):
            p.append(f"{where}: {', '.join(mutual)} require client certs; set RAVEN_TLS_CLIENT_CERT_FILE")
    for name in tls_servers:
        p += _check_tls_server(deployments[name], envs[name], objs, certificates)
    return p


def _check_tls_server(
    dep: Obj, env: dict[str, str | None], objs: tuple[Obj, ...], certs: dict[str, Obj]
) -> list[str]:
    where, name = _kn(dep), dep["metadata"]["name"]
    p: list[str] = []
    if not env.get("RAVEN_HEALTH_PORT"):
        p.append(f"{where}: TLS without RAVEN_HEALTH_PORT: kubelet's gRPC probes cannot speak TLS")
    files = {path: secret for path, secret, _ in _secret_files(dep, _main(dep))}
    secret = files.get(str(env.get("RAVEN_TLS_CERT_FILE")))
    cert = certs.get(secret)
    if cert is not None and name not in (cert["spec"].get("dnsNames") or []):
        p.append(f"{_kn(cert)}: dnsNames lack {name!r}, the Service clients dial")
    for svc in (o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == name):
        for port in svc["spec"].get("ports", []):
            if port.get("name") == "grpc" and port.get("appProtocol") == "kubernetes.io/h2c":
                p.append(f"{_kn(svc)}: port grpc says appProtocol h2c but the server speaks TLS")
    return p
