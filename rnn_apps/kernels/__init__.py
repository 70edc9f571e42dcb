"""The SimpleRNN recurrence as a C++ TensorFlow op (tanh_recurrence.cc), compiled here on first use.

TensorFlow runs a while loop one step at a time through its executor; the op runs a whole sequence,
forward or backward, in one kernel call (issue 13, bench/RESULTS.md "Performance"). It is compiled
with the flags TensorFlow reports (`tf.sysconfig`) and the first of `march_choices()` that builds:
the CPU's own instruction set less the extensions known to break the Eigen that TensorFlow bundles,
then the portable x86-64-v3 (AVX2). The library and a record of the build (`build.json`: compiler, flags,
or the compiler's first error line) are cached by the source, the TensorFlow version, the compiler
and the CPU, in $RNN_APPS_CACHE (default ~/.cache/rnn_apps); a failed build is remembered there too,
so a machine that cannot build it tries once, not at every training run (`python -m rnn_apps.kernels
--rebuild` tries again). `scripts/install.sh` builds it ahead. Where it cannot be built (no C++
compiler, another OS, a compiler error) `load()` says why once and returns None, and the layer runs
its TensorFlow loops instead: the same numbers, slower.
"""

import fcntl
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

SOURCE = Path(__file__).with_name("tanh_recurrence.cc")

# Instruction-set extensions whose Eigen code (bundled with TensorFlow 2.21) does not compile: with
# AVX512-FP16 (Intel Sapphire Rapids and later) g++ 12 stops in Eigen/src/Core/arch/AVX512/
# PacketMathFP16.h ("expected initializer before '<' token"). The op computes in float32 and needs none.
EIGEN_BREAKING_EXTENSIONS = ("avx512fp16",)


def cache_dir() -> Path:
    return Path(os.environ.get("RNN_APPS_CACHE") or Path.home() / ".cache" / "rnn_apps") / "kernels"


def compiler() -> str | None:
    """$CXX, else the first C++ compiler on PATH, as a path (None where there is none)."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    return next((path for name in names if (path := shutil.which(name))), None)


# What /proc/cpuinfo must list for code built with -march=x86-64-v3 to run (else: SIGILL).
X86_64_V3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave"}


def march_choices(target: list[str] | None = None, machine: str | None = None,
                  cpu_flags: set | None = None) -> list[list[str]]:
    """The target flags to try, best first. `target` is the CPU's own (`-march=native`); the tests
    pass other CPUs' targets to compile for them with exactly these choices."""
    target = target or ["-march=native"]
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return [target, []]
    choices = [
        [*target, *(f"-mno-{extension}" for extension in EIGEN_BREAKING_EXTENSIONS)],
        target,  # a compiler too old to know an extension refuses to turn it off: it cannot turn it on either
    ]
    # AVX2 and FMA: every x86-64 CPU of the last ten years, and only on one that has them. Not
    # x86-64-v2: built for SSE alone the op ran up to 1.9x slower than TensorFlow's loops
    # (bench/RESULTS.md "Performance"), so where nothing better builds, training keeps the loops.
    if X86_64_V3 <= (_cpu_flags() if cpu_flags is None else cpu_flags):
        choices.append(["-march=x86-64-v3"])
    return choices


def cpu_info() -> tuple:
    """(CPU model, set of its feature flags) from /proc/cpuinfo's first processor; elsewhere
    (platform.processor(), empty set). The kernel's cache key and fallbacks, and bench's records."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor(), set()
    first = {}
    for key, _, value in (line.partition(":") for line in lines):
        first.setdefault(key.strip(), value.strip())
    return first.get("model name", ""), set(first.get("flags", "").split())


def _cpu_flags() -> set:
    return cpu_info()[1]


def command(cxx: str, march: list[str], tf_flags: list[str], output: Path | None) -> list[str]:
    """The compiler's command line; without `output` it only checks the source (-fsyntax-only)."""
    produce = ["-shared", "-fPIC", "-O3", "-o", str(output)] if output else ["-fsyntax-only"]
    return [cxx, *produce, *march, "-w", str(SOURCE), *tf_flags]


def first_error(stderr: str) -> str:
    """The compiler's first error line (not the caret or context lines after it)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[0] if lines else "no output")


def tf_flags() -> list[str]:
    import tensorflow as tf

    return tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags()


def _cpu() -> str:
    """What -march=native compiles for: the CPU model and its feature flags."""
    model, flags = cpu_info()
    return "\n".join([model, *sorted(flags)])


def _write_json(path: Path, value: dict) -> None:
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(partial, path)


def build(rebuild: bool = False) -> dict:
    """Builds the op for this machine, or reads the cached outcome: a record with `library` (a path)
    where it built, `error` (one line) where it did not, and the `compiler`, `flags` and `tried` choices."""
    import tensorflow as tf

    cxx = compiler()
    if platform.system() != "Linux" or cxx is None:
        return {"error": f"no C++ compiler ({os.environ.get('CXX') or 'g++, c++, clang++'}) on {platform.system()}"}
    flags = tf_flags()
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
        key = hashlib.sha256("\n".join([SOURCE.read_text(), tf.__version__, cxx, version, _cpu(), *flags]).encode())
        folder = cache_dir() / key.hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        # One build per key even when several processes (pytest workers) ask at once; the library
        # appears under its final name only whole (os.replace), so a reader never loads half a file.
        with open(folder / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            record_path = folder / "build.json"
            if record_path.exists() and not rebuild:
                record = json.loads(record_path.read_text())
                if "error" in record or Path(record.get("library", "")).exists():
                    return record
            record = _compile(cxx, version.splitlines()[0] if version else cxx, flags, folder)
            _write_json(record_path, record)
            return {**record, "new": True}
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        return {"error": str(error)}


def _compile(cxx: str, version: str, flags: list[str], folder: Path) -> dict:
    library, partial = folder / "tanh_recurrence.so", folder / f"tanh_recurrence.{os.getpid()}.tmp"
    tried, start = [], time.perf_counter()
    for march in march_choices():
        done = subprocess.run(command(cxx, march, flags, partial), capture_output=True, text=True, timeout=900)
        if done.returncode == 0:
            os.replace(partial, library)
            return {"library": str(library), "compiler": version, "flags": march, "tried": tried,
                    "seconds": round(time.perf_counter() - start, 1)}
        partial.unlink(missing_ok=True)
        tried.append({"flags": march, "error": first_error(done.stderr)})
    # the first choice's error says most: the others are fallbacks that failed after it
    return {"error": f"{Path(cxx).name} {' '.join(tried[0]['flags'])}: {tried[0]['error']}", "compiler": version,
            "tried": tried}


def describe(record: dict) -> str:
    if "error" in record:
        return f"not built: {record['error']}"
    return f"built with {record['compiler']} {' '.join(record['flags'])} ({record['library']})"


@functools.cache
def load():
    """The op module (`tanh_recurrence`, `tanh_recurrence_grad`), or None where it cannot be built."""
    import tensorflow as tf

    record = build()
    if "error" not in record:
        if record.get("new"):  # built just now: say once how
            print(f"rnn_apps: SimpleRNN kernel {describe(record)}", file=sys.stderr)
        try:
            return tf.load_op_library(record["library"])
        except tf.errors.NotFoundError as error:
            record = {"error": first_error(str(error))}
    warnings.warn(f"rnn_apps: the SimpleRNN kernel is {describe(record)}; training runs TensorFlow's loops "
                  "(slower). `python -m rnn_apps.kernels --rebuild` tries again.", RuntimeWarning, stacklevel=2)
    return None
