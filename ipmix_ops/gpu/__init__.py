"""IPMix on the GPU: Triton kernels rendering the records of :mod:`ipmix_ops.sampling`.

Not imported by ``import ipmix_ops`` (it needs torch and Triton). Under Triton's interpreter
(``TRITON_INTERPRET=1`` before Triton is imported) the same kernels run on CPU tensors.

Exactness against the Numba fast path (:mod:`ipmix_ops.batch`), for the same records: the
point ops, the enhance ops, mirror, the four mixing ops, the int16 accumulator and the final
rounding give the same bytes; rotate / shear / translate are bilinear warps within 1 level.
"""

from .render import ipmix_apply, ipmix_batch

__all__ = ["ipmix_apply", "ipmix_batch"]
