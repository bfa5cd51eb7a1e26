"""The cluster CA: node certificates for the gossip (gRPC) and tunnel (QUIC) mutual TLS.

Every node of a cluster holds three files, given as ``--tls-ca``, ``--tls-cert``, ``--tls-key``:
the cluster CA's certificate, its own certificate signed by that CA, and its own private key.
A peer is trusted when its certificate chains to the CA; no hostname is checked, since nodes
find each other by gossip, not by DNS.

Files written (all PEM, so ``openssl``, gRPC and aioquic read them as they are):

- ``DIR/ca.pem``, ``DIR/ca.key``: the CA certificate and key (``init_ca``).
- ``DIR/NAME.pem``, ``DIR/NAME.key``: the certificate and key of node NAME (``issue``).

``.pem`` holds what may be shared (certificates), ``.key`` what must not (PKCS#8 private keys,
unencrypted, so a node starts unattended; they are created with mode 0600 and never exist
with a wider mode, not even for an instant). No file is ever overwritten: re-issuing a node
means deleting its two files first, on purpose. Each file is written to a temporary name in
the same folder and renamed into place, so a crash never leaves half a key behind.

Key types: ``"ec"`` (ECDSA P-256, the default) and ``"ed25519"``. Use EC for a cluster: gRPC's
TLS (BoringSSL, grpcio 1.85) does not offer Ed25519 signatures, so a gossip handshake with an
Ed25519 certificate fails with NO_COMMON_SIGNATURE_ALGORITHMS (a test pins this fact). Ed25519
stays for tools that accept it; ``load_tls`` and ``verify_peer`` handle both.

``TLSFiles.verify_peer`` uses ``cryptography.x509.verification`` where it can. That verifier
follows the Web PKI profile, which forbids Ed25519 keys; for a chain with an Ed25519 key the
same checks (signature, validity, issuer name, CA constraints, key usages) are made here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import ClientVerifier, PolicyBuilder, Store, VerificationError

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "DEFAULT_CA_DAYS",
    "DEFAULT_HOSTS",
    "DEFAULT_NODE_DAYS",
    "KEY_TYPES",
    "MAX_DAYS",
    "MAX_NAME_LENGTH",
    "MAX_PEM_BYTES",
    "NOT_BEFORE_BACKDATE",
    "VERIFIED_CACHE_SIZE",
    "VERIFIER_MAX_AGE",
    "CAError",
    "TLSFiles",
    "init_ca",
    "issue",
    "load_tls",
    "make_test_pki",
]

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
DEFAULT_CA_DAYS = 3650
DEFAULT_NODE_DAYS = 825  # the longest TLS leaf validity browsers ever accepted
#: Upper bound of ``days``: 100 years keeps dates far from X.509's year 9999 limit.
MAX_DAYS = 36500
#: Certificates start this long before "now", so a peer whose clock is a little behind
#: accepts a certificate issued a moment ago.
NOT_BEFORE_BACKDATE = dt.timedelta(minutes=5)
#: RFC 5280's upper bound of a common name; a node name is also a file name.
MAX_NAME_LENGTH = 64
#: A PEM file larger than this is not one of ours (a certificate is ~1 KiB); refuse to read it.
MAX_PEM_BYTES = 1 << 20
#: ``verify_peer``'s library verifier fixes "now" when built; it is rebuilt when this old. The
#: leaf's validity period is also checked against the real time on every call.
VERIFIER_MAX_AGE = dt.timedelta(seconds=60)
#: Leaves whose signature chain was verified, kept so a peer that reconnects costs a dict
#: lookup, not a signature check (~170 us for ECDSA P-256 on a slow core).
VERIFIED_CACHE_SIZE = 1024
DEFAULT_HOSTS = ("127.0.0.1", "::1", "localhost")
KEY_TYPES = ("ec", "ed25519")

_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_RE = re.compile(rf"(?:\*\.)?{_DNS_LABEL}(?:\.{_DNS_LABEL})*")

SigningKey: TypeAlias = (
    ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | rsa.RSAPrivateKey
)
_SIGNING_KEYS = (
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    rsa.RSAPrivateKey,
)
_Ext = TypeVar("_Ext", bound=x509.ExtensionType)


class CAError(ValueError):
    """Bad input or files for the cluster CA; the message names the file and what to do."""


# --- the two public operations ----------------------------------------------------------------


def init_ca(
    dir: str | Path,
    *,
    name: str = "rony cluster CA",
    days: int = DEFAULT_CA_DAYS,
    key_type: str = "ec",
) -> tuple[Path, Path]:
    """Write DIR/ca.pem and DIR/ca.key (key mode 0600, folder created). Refuses to overwrite."""
    folder = Path(dir)
    _check_days(days)
    if not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise CAError(f"CA name must be 1 to {MAX_NAME_LENGTH} characters, not {name!r}")
    cert_path, key_path = folder / CA_CERT_FILE, folder / CA_KEY_FILE
    _refuse_existing(cert_path, key_path)
    key = _new_key(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = _now() - NOT_BEFORE_BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        # path_length=0: this CA signs node certificates only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, _digest_for(key))
    )
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise CAError(f"cannot create {folder}: {exc.strerror or exc}") from None
    _write_files((key_path, _key_pem(key), 0o600), (cert_path, _cert_pem(cert), 0o644))
    return cert_path, key_path


def issue(
    dir: str | Path,
    name: str,
    *,
    hosts: Sequence[str] = (),
    days: int = DEFAULT_NODE_DAYS,
    key_type: str = "ec",
) -> tuple[Path, Path]:
    """A node certificate DIR/NAME.pem + DIR/NAME.key signed by DIR/ca.pem + DIR/ca.key.

    NAME (the node name / server id) becomes the subject CN. Each host becomes a SAN: an IP
    address as an IPAddress entry, anything else as a DNSName; none given means
    ``DEFAULT_HOSTS``. The certificate never outlives the CA: its end is capped at the CA's.
    """
    folder = Path(dir)
    _check_name(name)
    _check_days(days)
    sans = _sans(hosts or DEFAULT_HOSTS)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    ca_cert, ca_key = _load_ca(folder)
    _refuse_existing(cert_path, key_path)
    now = _now()
    if ca_cert.not_valid_after_utc <= now:
        raise CAError(f"{folder / CA_CERT_FILE}: the CA expired on {_date(ca_cert)}")
    key = _new_key(key_type)
    start = now - NOT_BEFORE_BACKDATE
    is_ec = isinstance(key, ec.EllipticCurvePrivateKey)  # ECDH key agreement only for EC keys
    usage = _key_usage(digital_signature=True, key_agreement=is_ec)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(min(start + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        # A node is both a server (it accepts gossip / tunnel connections) and a client.
        .add_extension(eku, critical=False)
        .add_extension(aki, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(ca_key, _digest_for(ca_key))
    )
    _write_files((key_path, _key_pem(key), 0o600), (cert_path, _cert_pem(cert), 0o644))
    return cert_path, key_path


# --- what a node loads ------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    """What a node is given (``--tls-ca``, ``--tls-cert``, ``--tls-key``), checked and parsed.

    The ``*_pem`` bytes go to gRPC / aioquic as they are; ``ca`` and ``cert`` are parsed.
    """

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    ca: x509.Certificate
    cert: x509.Certificate
    _verifier: _PeerVerifier = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_verifier", _PeerVerifier(self.ca))

    def verify_peer(self, chain: Sequence[x509.Certificate] | x509.Certificate) -> None:
        """Raise CAError unless the peer's leaf certificate chains to our CA.

        Checks the signature, both validity periods, the CA's basic constraints and the leaf's
        key usages; no hostname. ``chain`` is the peer's leaf, or its chain leaf first.
        """
        certs = [chain] if isinstance(chain, x509.Certificate) else list(chain)
        if not certs:
            raise CAError("the peer sent no certificate")
        leaf, *rest = certs
        problem = self._verifier.check(leaf, rest)
        if problem is not None:
            raise CAError(f"peer certificate {_cn(leaf)!r} rejected: {problem}")


class _PeerVerifier:
    """``verify_peer``'s state: the library verifier of our CA and the leaves it accepted.

    ``cryptography``'s verifier takes ~50 us to build and fixes its clock when built, so it is
    built once and rebuilt every ``VERIFIER_MAX_AGE``; each call checks the leaf's validity
    period against the real clock itself. A leaf once verified is cached (its bytes, signed
    by this one CA, cannot become unsigned), so only its validity is re-checked.
    """

    def __init__(self, ca: x509.Certificate) -> None:
        self._ca = ca
        self._ca_period = _period(ca)
        self._store = Store([ca])
        self._verifier: ClientVerifier | None = None
        self._built_at = _now()
        # leaf -> its validity period; insertion-ordered, so the first key is the oldest
        self._verified: dict[x509.Certificate, tuple[dt.datetime, dt.datetime]] = {}

    def check(self, leaf: x509.Certificate, intermediates: list[x509.Certificate]) -> str | None:
        """None if ``leaf`` is acceptable now, else what is wrong with it."""
        now = _now()
        known = self._verified.get(leaf)
        for (start, end), whose in ((known or _period(leaf), "it"), (self._ca_period, "our CA")):
            if end < now:
                return f"{whose} expired on {end:%Y-%m-%d %H:%M UTC}"
            if start > now:
                return f"{whose} is not valid before {start:%Y-%m-%d %H:%M:%S UTC} (clock wrong?)"
        if known is not None:
            return None
        if _webpki_key(leaf) and _webpki_key(self._ca):
            problem = self._check_with_library(leaf, intermediates, now)
        else:
            problem = self._check_eddsa(leaf)
        if problem is None:
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                del self._verified[next(iter(self._verified))]
            self._verified[leaf] = _period(leaf)
        return problem

    def _check_with_library(
        self, leaf: x509.Certificate, intermediates: list[x509.Certificate], now: dt.datetime
    ) -> str | None:
        if self._verifier is None or now - self._built_at > VERIFIER_MAX_AGE:
            # A client verifier checks the chain without a hostname and wants clientAuth in
            # the leaf's extended key usage; every node certificate has it (and serverAuth).
            builder = PolicyBuilder().store(self._store).time(now)
            self._verifier, self._built_at = builder.build_client_verifier(), now
        try:
            self._verifier.verify(leaf, intermediates)
        except VerificationError as exc:
            return f"does not chain to our CA {_cn(self._ca)!r} ({exc})"
        return None

    def _check_eddsa(self, leaf: x509.Certificate) -> str | None:
        """The library's checks that matter here, for keys its Web PKI policy forbids.

        The CA has path length 0, so the leaf must be signed by it directly; intermediates
        cannot help and are not looked at.
        """
        ca = self._ca
        if leaf.issuer != ca.subject:
            return f"issued by {leaf.issuer.rfc4514_string()!r}, not by our CA {_cn(ca)!r}"
        try:
            leaf.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            return f"it is not signed by our CA {_cn(ca)!r}"
        ca_usage = _extension(ca, x509.KeyUsage)
        if not _is_ca(ca) or ca_usage is None or not ca_usage.key_cert_sign:
            return f"our CA {_cn(ca)!r} may not sign certificates (basic constraints, key usage)"
        if _is_ca(leaf):
            return "it is a CA certificate, not a node certificate"
        usage = _extension(leaf, x509.KeyUsage)
        if usage is not None and not usage.digital_signature:
            return "its key usage does not allow digitalSignature"
        eku = _extension(leaf, x509.ExtendedKeyUsage)
        if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            return "its extended key usage does not allow clientAuth"
        return None


def _webpki_key(cert: x509.Certificate) -> bool:
    """Whether ``cryptography.x509.verification`` (Web PKI profile) accepts this key type."""
    key = cert.public_key()
    return isinstance(key, rsa.RSAPublicKey) or (
        isinstance(key, ec.EllipticCurvePublicKey)
        and isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1)
    )


def _extension(cert: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def load_tls(ca: str | Path, cert: str | Path, key: str | Path) -> TLSFiles:
    """Read and check a node's three files: each parses; the key matches the certificate; the
    certificate is signed by that CA and valid now. CAError naming the file otherwise."""
    ca_path, cert_path, key_path = Path(ca), Path(cert), Path(key)
    ca_pem, cert_pem, key_pem = _read(ca_path), _read(cert_path), _read(key_path)
    ca_cert = _parse_cert(ca_pem, ca_path)
    node_cert = _parse_cert(cert_pem, cert_path)
    node_key = _parse_key(key_pem, key_path)
    if not _is_ca(ca_cert):
        raise CAError(f"{ca_path}: {_cn(ca_cert)!r} is not a CA certificate")
    if _is_ca(node_cert):
        raise CAError(f"{cert_path}: a CA certificate, not a node certificate")
    if not _same_key(node_key, node_cert):
        raise CAError(f"{key_path} is not the key of {cert_path}")
    files = TLSFiles(ca_pem, cert_pem, key_pem, ca_cert, node_cert)
    problem = files._verifier.check(node_cert, [])
    if problem is not None:
        raise CAError(f"{cert_path} ({_cn(node_cert)!r}) is not valid with {ca_path}: {problem}")
    return files


def make_test_pki(
    dir: str | Path, names: Sequence[str], *, hosts: Sequence[str] = (), key_type: str = "ec"
) -> dict[str, TLSFiles]:
    """For tests and benchmarks: a CA in DIR and one loaded node certificate per name."""
    ca_cert, _ = init_ca(dir, key_type=key_type)
    out: dict[str, TLSFiles] = {}
    for name in names:
        cert_path, key_path = issue(dir, name, hosts=hosts, key_type=key_type)
        out[name] = load_tls(ca_cert, cert_path, key_path)
    return out


# --- checks -----------------------------------------------------------------------------------


def _check_days(days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise CAError(f"days must be a whole number from 1 to {MAX_DAYS}, not {days!r}")


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise CAError(
            f"node name {name!r}: use 1 to {MAX_NAME_LENGTH} letters, digits, '-', '_' or '.', "
            "not starting with '.' (it is also a file name)"
        )
    if name == Path(CA_CERT_FILE).stem:
        raise CAError(f"node name {name!r} is reserved: {CA_CERT_FILE} is the CA's own file")


def _sans(hosts: Sequence[str]) -> list[x509.GeneralName]:
    if isinstance(hosts, str):  # a lone string would become one SAN per character
        hosts = [hosts]
    out: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):  # de-duplicated, order kept
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if not _DNS_RE.fullmatch(host) or len(host) > 253:
            raise CAError(f"host {host!r} is neither an IP address nor a DNS name")
        out.append(x509.DNSName(host.lower()))
    return out


def _refuse_existing(*paths: Path) -> None:
    for path in paths:
        if os.path.lexists(path):  # a dangling symlink counts: writing would follow it
            raise CAError(f"{path} already exists; not overwriting it (delete it to re-create)")


def _is_ca(cert: x509.Certificate) -> bool:
    constraints = _extension(cert, x509.BasicConstraints)
    return constraints is not None and constraints.ca


def _same_key(key: SigningKey, cert: x509.Certificate) -> bool:
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)


# --- reading ----------------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PEM_BYTES + 1)
    except FileNotFoundError:
        raise CAError(f"{path}: no such file") from None
    except OSError as exc:
        raise CAError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_PEM_BYTES:
        raise CAError(f"{path}: larger than {MAX_PEM_BYTES} bytes, not a PEM certificate or key")
    return data


def _parse_cert(data: bytes, path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CAError(f"{path}: not a PEM certificate") from None


def _parse_key(data: bytes, path: Path) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # the key is encrypted
        raise CAError(f"{path}: an encrypted key; rony needs an unencrypted one") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CAError(f"{path}: not a PEM private key") from None
    if not isinstance(key, _SIGNING_KEYS):
        raise CAError(f"{path}: a {type(key).__name__}, not a signing key")
    return key


def _load_ca(folder: Path) -> tuple[x509.Certificate, SigningKey]:
    cert_path, key_path = folder / CA_CERT_FILE, folder / CA_KEY_FILE
    if not (cert_path.exists() and key_path.exists()):
        raise CAError(
            f"{folder} has no {CA_CERT_FILE}/{CA_KEY_FILE}: run `rony ca init --dir {folder}` first"
        )
    cert = _parse_cert(_read(cert_path), cert_path)
    key = _parse_key(_read(key_path), key_path)
    if not _same_key(key, cert):
        raise CAError(f"{key_path} is not the key of {cert_path}")
    if not _is_ca(cert):
        raise CAError(f"{cert_path}: {_cn(cert)!r} is not a CA certificate")
    if _extension(cert, x509.SubjectKeyIdentifier) is None:
        raise CAError(f"{cert_path}: the CA has no SubjectKeyIdentifier")
    return cert, key


# --- writing ----------------------------------------------------------------------------------


def _write_files(*files: tuple[Path, bytes, int]) -> None:
    """Write each (path, data, mode) under a temporary name, then rename them all into place.

    Keys get their mode at creation (``os.open``), never a chmod after the bytes are on disk.
    """
    temps: list[tuple[str, Path]] = []
    current = files[0][0]  # the file being written, for the error message
    try:
        for current, data, mode in files:
            fd, tmp = _create_temp(current, mode)
            temps.append((tmp, current))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _refuse_existing(*(path for _, path in temps))  # created meanwhile by someone else?
        for tmp, current in temps:
            os.replace(tmp, current)
    except OSError as exc:
        raise CAError(f"cannot write {current}: {exc.strerror or exc}") from None
    finally:
        for tmp, _ in temps:
            if os.path.lexists(tmp):
                os.unlink(tmp)


def _create_temp(path: Path, mode: int) -> tuple[int, str]:
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")  # pragma: no cover


def _key_pem(key: SigningKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# --- small helpers ----------------------------------------------------------------------------


def _new_key(key_type: str) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise CAError(f"key type {key_type!r}: use one of {', '.join(KEY_TYPES)}")


def _digest_for(key: SigningKey) -> hashes.SHA256 | None:
    # EdDSA hashes internally and takes no digest; ECDSA and RSA sign a SHA-256 digest.
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def _key_usage(
    *,
    digital_signature: bool = False,
    key_agreement: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else cert.subject.rfc4514_string()
    return value if isinstance(value, str) else value.decode(errors="replace")


def _period(cert: x509.Certificate) -> tuple[dt.datetime, dt.datetime]:
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def _date(cert: x509.Certificate) -> str:
    return cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
