"""Encrypted click and impression links (docs/design.md, "Library surface"), kept at their public name.

The code is in `measure.tune.links`, beside signing (both are the seed's spec); the functions never
build links, so neither module is deployed.
"""

from measure.tune.links import build_link, decrypt_data, encrypt_data

__all__ = ["build_link", "decrypt_data", "encrypt_data"]
