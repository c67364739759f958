"""Flush denormal floats to zero while alignkit trains on a CPU (:func:`flush_denormals`).

Late in an ascent-style defence (RepNoise, gradient ascent, TAR) and in an attack on such a model, softmax
probabilities fall below 1.2e-38 (float32's smallest normal number). On many x86 CPUs arithmetic on those
*denormal* numbers takes a slow microcode path: one logit-lens matmul over them ran 227x slower on one CPU
(63.6 s vs 0.28 s). Numbers that small contribute nothing at float32 precision, so flushing them to zero
leaves every loss and gradient unchanged to float32 rounding. GPU kernels are not affected.
"""

from __future__ import annotations

import contextlib

_FTZ_DEPTH = 0


def _set_flush_denormal_all_threads(on: bool) -> bool:
    """``torch.set_flush_denormal(on)`` on the calling thread **and** on every OpenMP worker of torch's
    intra-op pool (the flag is per thread: setting it on the main thread alone leaves the workers that run most
    of a matmul slow). The workers are reached through one ``GOMP_parallel`` region of the OpenMP runtime torch
    loaded; without one (other runtimes) only the calling thread is set. Returns False where unsupported."""
    import torch

    if not torch.set_flush_denormal(on):
        return False
    try:
        import ctypes

        path = None
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                if "libgomp" in line and line.rstrip().endswith(".so.1"):
                    path = line.split()[-1]
                    break
        if path is None:
            return True
        gomp = ctypes.CDLL(path)
        callback_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        callback = callback_type(lambda _data: torch.set_flush_denormal(on))
        gomp.GOMP_parallel.argtypes = [callback_type, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        gomp.GOMP_parallel.restype = None
        gomp.GOMP_parallel(callback, None, max(1, torch.get_num_threads()), 0)
    except (OSError, AttributeError):  # no /proc, no GOMP_parallel: the calling thread is set
        pass
    return True


@contextlib.contextmanager
def flush_denormals():
    """Flush denormals to zero on every intra-op thread while the block runs; restored to off on exit
    (nestable: the outermost block decides)."""
    global _FTZ_DEPTH
    if _FTZ_DEPTH == 0:
        _set_flush_denormal_all_threads(True)
    _FTZ_DEPTH += 1
    try:
        yield
    finally:
        _FTZ_DEPTH -= 1
        if _FTZ_DEPTH == 0:
            _set_flush_denormal_all_threads(False)


def denormals_flushed() -> bool:
    """Whether the calling thread flushes denormals now (a probe: 1e-38 * 0.01 is denormal)."""
    import torch

    return float(torch.tensor([1e-38]) * torch.tensor([0.01])) == 0.0
