"""glibc's malloc told to keep the memory PyTorch frees, so that the CPU does not fault it in again.

On a CPU, PyTorch allocates every activation anew and frees it once used. With glibc's
defaults, a freed block at the top of the heap goes back to the system, and the next
forward pass gets it again as fresh pages that the kernel zeroes one page fault at a time:
five forward passes of VGGish on 16 windows took 1.9 million page faults. Extracting the
quick demo's VGGish pitch features took 24 s, and 15 s of CPU time in the kernel (2-core
Intel Xeon). Kept (no trimming, 1 GiB of headroom with each growth of the heap, blocks up to
32 MiB from the heap rather than mappings of their own), those passes take 18 thousand
faults and the extraction 17 s, its peak memory 0.89 GB instead of 0.82 (docs/speed.md).
Where malloc is not glibc's (macOS, musl), nothing changes.
"""
import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
KEEP = {M_TRIM_THRESHOLD: 2**31 - 1,  # mallopt takes an int: the largest, i.e. never trim
        M_TOP_PAD: 2**30,
        M_MMAP_THRESHOLD: 2**25}      # the largest glibc accepts on 64-bit systems


def keep_freed_memory():
    """Set glibc's malloc to keep freed memory for this process and the ones it forks."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):  # no C library found by that name, or one without mallopt
        return
    for parameter, value in KEEP.items():
        mallopt(parameter, value)
