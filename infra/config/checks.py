"""Pure checks on config values: integers, CIDRs and the address space they open, SSH public keys.

No config keys and no messages here (the loader owns those): each function answers one question
about a value. The policy pack (``policy/rules.py``) applies the same limits to the resources
the program declares; a unit test keeps :data:`MIN_SSH_PREFIX` equal on both sides.
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from collections.abc import Iterable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

__all__ = [
    "MAX_SSH_ADDRESSES",
    "MIN_RSA_BITS",
    "MIN_SSH_PREFIX",
    "RFC1918",
    "SSH_KEY_TYPES",
    "address_count",
    "ascii_integer",
    "is_rfc1918",
    "ssh_key_problem",
]

#: The broadest source allowed to reach port 22 in ssh mode: one /24 (an office or a VPN egress
#: range). A list of sources may not add up to more addresses than one such block either, so
#: ["0.0.0.0/1", "128.0.0.0/1"] (the whole internet in two halves) is refused like 0.0.0.0/0.
MIN_SSH_PREFIX = 24
MAX_SSH_ADDRESSES = 2 ** (32 - MIN_SSH_PREFIX)

#: The private IPv4 ranges of RFC 1918. ``ipaddress``'s ``is_private`` also admits documentation,
#: loopback and link-local ranges, none of which a VPC subnet may use.
RFC1918: tuple[ipaddress.IPv4Network, ...] = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
)

SSH_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
MIN_RSA_BITS = 3072  # NIST SP 800-57: RSA below 3072 bits is under the 128-bit security level

# One line of printable ASCII: "<type> <base64> [comment]". [0-9] and \x20-\x7e are ASCII by
# construction, so no Unicode digit or line separator can slip through.
_KEY_LINE = re.compile(r"([a-z0-9-]+) ([A-Za-z0-9+/]+={0,2})( [\x20-\x7e]*)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def ascii_integer(text: str) -> int | None:
    """``text`` as an int if it is ASCII digits with an optional sign, else None.

    ``int()`` alone accepts ``'٣٠'`` (Arabic-Indic digits), ``'5_432'`` and surrounding blanks;
    a config value is none of those.
    """
    return int(text) if _INTEGER.fullmatch(text) else None


def address_count(networks: Iterable[ipaddress.IPv4Network]) -> int:
    """How many IPv4 addresses ``networks`` open together (overlaps counted once)."""
    return sum(net.num_addresses for net in ipaddress.collapse_addresses(networks))


def is_rfc1918(network: ipaddress.IPv4Network) -> bool:
    return any(network.subnet_of(block) for block in RFC1918)


def ssh_key_problem(text: str) -> str | None:
    """What is wrong with ``text`` as one OpenSSH public key line, or None when it is a usable key.

    One line only: a second line would become a second authorized key (GCP's ``ssh-keys``
    metadata holds one key per line). The key blob must parse as the type it names.
    """
    if any(ch in text for ch in "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"):
        return "one line (this value has a line break, which would add a second key)"
    match = _KEY_LINE.fullmatch(text)
    if match is None:
        return "'<type> <base64> [comment]' in printable ASCII"
    kind, blob = match.group(1), match.group(2)
    if kind not in SSH_KEY_TYPES:
        return f"a key of type {', '.join(SSH_KEY_TYPES)}"
    try:
        key = load_ssh_public_key(f"{kind} {blob}".encode())
    except (ValueError, UnsupportedAlgorithm, binascii.Error):
        return f"a {kind} key whose base64 blob decodes to that key type"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"an RSA key of at least {MIN_RSA_BITS} bits (this one has {key.key_size})"
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return f"a key of type {', '.join(SSH_KEY_TYPES)}"
    return None
