"""The SimpleRNN recurrence as a C++ TensorFlow op (tanh_recurrence.cc), compiled here on first use.

TensorFlow runs a while loop one step at a time through its executor; the op runs a whole sequence,
forward or backward, in one kernel call (issue 13, bench/RESULTS.md "Performance"). It is compiled
with the flags TensorFlow reports (`tf.sysconfig`) and `-march=native`, and cached by its source,
the TensorFlow version, the compiler and the CPU, in $RNN_APPS_CACHE (default ~/.cache/rnn_apps);
`scripts/install.sh` builds it ahead (`python -m rnn_apps.kernels`). Where it cannot be built (no
C++ compiler, another OS) `load()` says why once and returns None, and the layer runs its
TensorFlow loops instead: the same numbers, slower.
"""

import fcntl
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import warnings
from pathlib import Path

SOURCE = Path(__file__).with_name("tanh_recurrence.cc")


def cache_dir() -> Path:
    return Path(os.environ.get("RNN_APPS_CACHE") or Path.home() / ".cache" / "rnn_apps") / "kernels"


def _cpu() -> str:
    """What -march=native compiles for: the CPU model and its feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(next((line for line in lines if line.startswith(key)), "") for key in ("model name", "flags"))


def _build(compiler: str, flags: list[str], library: Path) -> None:
    library.parent.mkdir(parents=True, exist_ok=True)
    # One build per key even when several processes (pytest workers) ask at once; the library
    # appears under its final name only whole (os.replace), so a reader never loads half a file.
    with open(library.parent / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if library.exists():
            return
        partial = library.with_suffix(f".{os.getpid()}.tmp")
        command = [compiler, "-shared", "-fPIC", "-O3", "-march=native", "-w", str(SOURCE), "-o", str(partial),
                   *flags]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"{compiler} failed: {done.stderr.strip().splitlines()[-1:]}")
        os.replace(partial, library)


@functools.cache
def load():
    """The op module (`tanh_recurrence`, `tanh_recurrence_grad`), or None where it cannot be built."""
    import tensorflow as tf

    compiler = os.environ.get("CXX", "g++")
    flags = tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags()
    if platform.system() != "Linux" or shutil.which(compiler) is None:
        warnings.warn(f"rnn_apps: no C++ compiler ({compiler}) on {platform.system()}: SimpleRNN training runs "
                      "TensorFlow's loops (slower)", RuntimeWarning, stacklevel=2)
        return None
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
        key = hashlib.sha256("\n".join([SOURCE.read_text(), tf.__version__, version, _cpu(), *flags]).encode())
        library = cache_dir() / key.hexdigest()[:16] / "tanh_recurrence.so"
        _build(compiler, flags, library)
        return tf.load_op_library(str(library))
    except (OSError, RuntimeError, subprocess.SubprocessError, tf.errors.NotFoundError) as error:
        warnings.warn(f"rnn_apps: the SimpleRNN kernel did not build ({error}): training runs TensorFlow's "
                      "loops (slower)", RuntimeWarning, stacklevel=2)
        return None

