"""The signing functions users call (docs/design.md, "Library surface"), kept at their public name.

They live in `measure.tune`, the Measurement API layer; this module only re-exports them (every
public name of `measure.tune.signing`, and `MeasureAuth`), so
`from measure.signing import MeasureAuth, encode_post_params, generate_signature` keeps working.
The functions do not import it, so it is not deployed.
"""

from measure.tune.auth import MeasureAuth
from measure.tune.signing import *  # noqa: F403

__all__ = ["MeasureAuth"] + [name for name in dir() if not name.startswith("_") and name != "MeasureAuth"]
