"""Degradation operators, one family a module, all in one registry.

Every op follows the contract of :mod:`degkit.ops.base`:
``sample(rng, n) -> params``, ``apply(x, params) -> x``,
``describe(params) -> records``. ``create_op(name, **config)`` builds one by
name; ``registered_ops()`` lists them.
"""

from degkit.ops import (
    blur,  # noqa: F401  (registers the ops)
    color,  # noqa: F401  (registers the ops)
    jpeg,  # noqa: F401  (registers the ops)
    noise,  # noqa: F401  (registers the ops)
    quantize,  # noqa: F401  (registers the ops)
    resize,  # noqa: F401  (registers the ops)
    sharpen,  # noqa: F401  (registers the ops)
    weather,  # noqa: F401  (registers the ops)
)
from degkit.ops.base import (
    Images,
    Op,
    OpError,
    Params,
    Record,
    create_op,
    op_class,
    registered_ops,
)

__all__ = ["Images", "Op", "OpError", "Params", "Record", "create_op", "op_class", "registered_ops"]
