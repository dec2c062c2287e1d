"""Encrypted click and impression links (docs/design.md, "Library surface"), kept at their public name.

The code is in `measure.tools.links`: the functions never build links, so it is not deployed.
"""

from measure.tools.links import build_link, decrypt_data, encrypt_data

__all__ = ["build_link", "decrypt_data", "encrypt_data"]
