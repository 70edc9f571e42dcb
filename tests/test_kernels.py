"""The C++ recurrence builds for every x86-64 CPU generation, whatever CPU runs the tests: the source is
checked (-fsyntax-only: Eigen's headers are where a CPU's extensions break the build) for each target
with exactly the flags the loader would choose first on that CPU. A failed build is remembered, and
says the compiler's first error line. Equality of the op with the stock layer: tests/test_layers.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnn_apps import kernels

REPO = Path(__file__).resolve().parents[1]

# What g++ 12's -march=native gives on an AMD EPYC Zen 4 (read with `g++ -march=native -Q --help=target`),
# for compilers that do not know -march=znver4 (g++ before 12.3, clang before 16).
ZNVER4_AS_FEATURES = ["-march=znver3", "-mavx512f", "-mavx512dq", "-mavx512cd", "-mavx512bw", "-mavx512vl",
                      "-mavx512ifma", "-mavx512vbmi", "-mavx512vbmi2", "-mavx512vnni", "-mavx512bitalg",
                      "-mavx512vpopcntdq", "-mavx512bf16", "-mgfni", "-mvaes", "-mvpclmulqdq"]
TARGETS = ["x86-64-v2", "x86-64-v3", "x86-64-v4", "sapphirerapids", "znver4", "graniterapids"]


def _knows(cxx, march):
    empty = subprocess.run([cxx, f"-march={march}", "-x", "c++", "-fsyntax-only", "-"], input="", text=True,
                           capture_output=True)
    return empty.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_the_loaders_first_choice_compiles_for_every_cpu_generation(target):
    cxx = kernels.compiler()
    if cxx is None:
        pytest.skip("no C++ compiler")
    march = [f"-march={target}"]
    if not _knows(cxx, target):
        if target != "znver4":
            pytest.skip(f"{Path(cxx).name} does not know -march={target}")
        march = ZNVER4_AS_FEATURES
    flags = kernels.march_choices(march, machine="x86_64")[0]
    done = subprocess.run(kernels.command(cxx, flags, kernels.tf_flags(), None), capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(flags)}: {kernels.first_error(done.stderr)}"


def test_the_loader_falls_back_to_portable_targets_in_order():
    v3 = kernels.X86_64_V3 | {"avx512f"}
    assert kernels.march_choices(machine="x86_64", cpu_flags=v3) == [
        ["-march=native", "-mno-avx512fp16"], ["-march=native"], ["-march=x86-64-v3"]]
    # a CPU without AVX2 would fault on x86-64-v3 code: native only, else TensorFlow's loops
    assert kernels.march_choices(machine="x86_64", cpu_flags={"avx", "sse4_2"}) == [
        ["-march=native", "-mno-avx512fp16"], ["-march=native"]]
    assert kernels.march_choices(machine="aarch64") == [["-march=native"], []]


def test_the_first_error_line_is_the_error_not_the_caret():
    stderr = ("In file included from x.cc:1:\n"
              "/include/Eigen/PacketMathFP16.h:740:49: error: expected initializer before '<' token\n"
              "  740 | EIGEN_STRONG_INLINE Packet32h pset1<Packet32h>(\n"
              "      |                                                ^\n")
    assert kernels.first_error(stderr) == "/include/Eigen/PacketMathFP16.h:740:49: error: expected initializer " \
                                          "before '<' token"


@pytest.mark.slow
def test_a_failed_build_is_remembered_and_says_the_compilers_error(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    failing = tmp_path / "failing-g++"
    failing.write_text(f"#!/bin/sh\ncase \"$*\" in *--version*) echo 'failing-g++ 1.0'; exit 0;; esac\n"
                       f"echo compiled >> {calls}\n"
                       "echo 'x.cc:3:1: error: no AVX here' >&2\necho '    |  ^' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setenv("CXX", str(failing))
    monkeypatch.setenv("RNN_APPS_CACHE", str(tmp_path / "cache"))
    for _ in range(2):
        with pytest.warns(RuntimeWarning, match="not built: failing-g\\+\\+ -march=.*: x.cc:3:1: error: no AVX here"):
            assert kernels.load.__wrapped__() is None
    tried = len(kernels.march_choices())
    assert calls.read_text().count("compiled") == tried  # each choice once, not again on the second load
    assert not list(tmp_path.rglob("*.so")) and not list(tmp_path.rglob("*.tmp"))

    # the command-line tool says the same, exits 1, and --rebuild tries again
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for arguments, compiles in (([], 0), (["--rebuild"], tried)):
        before = calls.read_text().count("compiled")
        done = subprocess.run([sys.executable, "-m", "rnn_apps.kernels", *arguments], capture_output=True,
                              text=True, env=env)
        assert done.returncode == 1
        assert done.stdout.strip().endswith("-mno-avx512fp16: x.cc:3:1: error: no AVX here")
        assert calls.read_text().count("compiled") == before + compiles


@pytest.mark.slow
def test_the_avx2_fallback_build_equals_the_stock_layer(tmp_path):
    """Where -march=native does not build, the loader takes x86-64-v3, whose tiles are AVX2-sized
    (other code than the AVX-512 tiles the suite otherwise runs): the kernel-equality tests of
    tests/test_layers.py pass with that build, in a process of its own (one op library a process)."""
    cxx = kernels.compiler()
    if cxx is None or not kernels.X86_64_V3 <= kernels._cpu_flags():
        pytest.skip("needs a C++ compiler and a CPU that runs x86-64-v3 code (AVX2, FMA, ...)")
    no_native = tmp_path / "no-native-g++"
    no_native.write_text("#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = -march=native ] && "
                         f"{{ echo 'x.cc:1:1: error: no native here' >&2; exit 1; }}; done\nexec {cxx} \"$@\"\n")
    no_native.chmod(0o755)
    env = {**os.environ, "CXX": str(no_native), "RNN_APPS_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_layers.py",
                           "-k", "compiled_kernel and 64"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "12 passed" in done.stdout, done.stdout[-3000:]
    record = json.loads(next((tmp_path / "cache").rglob("build.json")).read_text())
    assert record["flags"] == ["-march=x86-64-v3"]
