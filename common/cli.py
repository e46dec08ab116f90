"""Command-line plumbing shared by every script: one-line errors and exit code 2.

A researcher who mistypes an option or forgets to download a dataset should read one
line that says what is wrong and what to do, not a traceback.
"""
import argparse
import errno
import math
import os
import sys
import warnings
from pathlib import Path

from .allocator import keep_freed_memory

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_ROOT = REPO_ROOT / "data"


class UserError(Exception):
    """A problem the user can fix (bad option, missing data, corrupt file)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option ends in a single line on stderr and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def folder(text):
    """An argparse type for a folder option: a path that is not a file (it may not exist yet)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: is a file, not a folder")
    return path


def existing_file(text):
    """An argparse type for an input file option: the file must be there."""
    path = Path(text)
    if not path.is_file():
        why = "is a folder" if path.is_dir() else "no such file"
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: {why}")
    return path


def existing_dir(text):
    """An argparse type for an input folder: the folder must be there."""
    path = Path(text)
    if not path.is_dir():
        why = "is a file" if path.exists() else "no such folder"
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: {why}")
    return path


def add_data_options(parser):
    parser.add_argument("--data-root", type=folder, default=DEFAULT_DATA_ROOT,
                        help="folder that holds the datasets (default: data/)")
    parser.add_argument("--demo", action="store_true",
                        help="use the embedded demo datasets (rendered on first use, no network)")


def add_partial_data_option(parser):
    parser.add_argument("--partial-data", action="store_true",
                        help="go on where a split of the dataset has no usable clip, or fewer than 95%% of its clips "
                             "(an incomplete download), with the clips there are")


def check_output_dir(path, option):
    """Refuse, before any work, an output folder that is a file or cannot be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file, not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: {existing} is not writable")
    return path


# What a full, read-only or foreign folder answers a write with
PERMISSION = (errno.EACCES, errno.EPERM)
UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, *PERMISSION)


def _one_line_warning(message, category, filename, lineno, line=None):
    """A warning as the user reads it: what happened, not the line of source that said so."""
    return f"warning: {message}\n"


def run(main):
    """Run `main()`, with malloc keeping the memory it frees (allocator.py); a UserError, a
    folder that cannot take a write, or Ctrl-C ends the program with one line and exit code 2
    (130 for Ctrl-C). Warnings print as one line each."""
    keep_freed_memory()
    warnings.formatwarning = _one_line_warning
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        if error.errno not in UNWRITABLE:
            raise
        what = (f"permission denied: {error.filename} (read-only, or not yours)" if error.errno in PERMISSION else
                f"cannot write {error.filename or 'a file'}: {error.strerror} (the disk or quota is full, or the file "
                f"system is read-only)")
        print(f"error: {what}; everything finished is kept: make room or choose another folder, then run the same "
              f"command again", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished work is kept, run the same command again to resume",
              file=sys.stderr)
        sys.exit(130)


def _number(cast, accept, requirement):
    """An argparse type: `cast(text)` if `accept` takes it, else one line naming the value."""
    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be {requirement}")
        return value
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "0 or a positive integer")
positive_float = _number(float, lambda v: v > 0 and math.isfinite(v), "a positive number")
fraction = _number(float, lambda v: 0 < v <= 1, "a fraction in (0, 1]")
non_negative_float = _number(float, lambda v: v >= 0 and math.isfinite(v), "0 or a positive number")
