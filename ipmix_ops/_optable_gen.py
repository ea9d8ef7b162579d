"""Source of the compiled op dispatchers, generated from the op table (:mod:`ipmix_ops.optable`).

Numba cannot call through a table of functions, so :func:`dispatcher_source` writes the
if/elif chains of ``op_parameter``, ``is_identity`` and ``apply_op_k`` over the table's ops;
the table module ``exec``-s it once at import. The chains are the ones formerly written by
hand, so the compiled code (and its speed) is unchanged. Kernels and identity rules are
referenced as ``_kernel_<name>`` / ``_identity_<name>`` globals of the table module.
"""

from __future__ import annotations

from typing import Any


def parameter_expr(mag: Any) -> str:
    """The Numba/Python expression of a :class:`~ipmix_ops.optable.Magnitude` in ``level``,
    ``sign`` and ``image_size`` (the authors' ``int(l * M / 10)`` / ``l * M / 10``)."""
    m = f"(image_size / {mag.m!r})" if mag.per_size else repr(mag.m)
    v = f"level * {m} / 10"
    if mag.integer:
        v = f"int({v})"
    if mag.signed:
        v = f"sign * ({v})"
    if mag.offset:
        v = f"{mag.offset!r} {'-' if mag.slope < 0 else '+'} {v}"
    elif mag.slope < 0:
        v = f"-({v})"
    return f"float({v})"


def _function(decorator: str, signature: str, doc: str, body: list[str], tail: str) -> list[str]:
    return [f"@njit({decorator})", f"def {signature}:", f'    """{doc}"""', *body, tail, "", ""]


def dispatcher_source(ops: tuple) -> str:
    """Python source defining the three ``@njit(cache=True)`` dispatchers over ``ops``."""
    params, identities, kernels = ["    sign = -1.0 if negate else 1.0"], [], []
    for i, op in enumerate(ops):
        if op.magnitude is not None:
            params += [
                f"    if op == {i}:  # {op.name}",
                f"        return {parameter_expr(op.magnitude)}",
            ]
        if op.identity is not None:
            identities += [f"    if op == {i}:", f"        return _identity_{op.name}(param)"]
        kernels += [
            f"    {'if' if i == 0 else 'elif'} op_id == {i}:",
            f"        _kernel_{op.name}(src, dst, param, y0, x0, h, w)",
        ]
    lines = _function(
        "cache=True",
        "op_parameter(op, level, negate, image_size)",
        "Pillow parameter of ``op`` for ``level`` and sign flip ``negate`` (``OpDef.magnitude``).",
        params,
        "    return 0.0",
    )
    lines += _function(
        "cache=True",
        "is_identity(op, param)",
        "True when ``op`` with ``param`` leaves every image unchanged (``OpDef.identity``).",
        identities,
        "    return False",
    )
    lines += _function(
        "cache=True, nogil=True",
        "apply_op_k(op_id, src, dst, param, y0, x0, h, w)",
        "Run op ``op_id`` on ``src`` into ``dst[y0:y0+h, x0:x0+w]``; unknown ids: no-op.",
        kernels,
        "    return None",
    )
    return "\n".join(lines)
