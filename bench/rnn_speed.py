"""Training-step speed of the SimpleRNN every app uses (rnn_apps/layers.py FastSimpleRNN) against
the stock keras.layers.SimpleRNN (with and without XLA), PyTorch's nn.RNN where PyTorch is
installed, and the hardware limit: the step's FLOPs over the large-matrix SGEMM rate measured in
the same process. All in one run, as ratios.

    python bench/rnn_speed.py [--steps 10] [--rounds 3] [--configs reference,charlm] [--result rnn_speed]
                              [--bfloat16]

On a GPU machine (no TensorFlow there: Keras on JAX, PyTorch with cuDNN), issue 13's GPU comparison:

    KERAS_BACKEND=jax python bench/rnn_speed.py --steps 50 --result rnn_speed_gpu

On TensorFlow without XLA the fast layer runs the C++ op of rnn_apps/kernels (`fast`), and is also
timed on TensorFlow's while loops (`fast_loops`); `no_recurrence` is the same model without its
recurrent layer (embedding, output layer, Adam): the floor of the step.

JAX always compiles, so there the stock and fast layers run with XLA only (the fast one's lax.scan
loops); PyTorch runs on the GPU
where it sees one (nn.RNN is cuDNN's there), without torch.compile.

Configurations (issue 13): reference = vocabulary 10,000, embedding 64, 128 units, length 200,
batch 64, one sigmoid output, Adam; charlm = embedding 64, 512 units, length 100, batch 64, a
65-way softmax at every step. Writes bench/results/<--result>.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import common
import numpy as np

CONFIGS = {
    "reference": {"vocabulary": 10_000, "embedding": 64, "units": 128, "length": 200, "batch": 64, "classes": 1,
                  "per_step": False},
    "charlm": {"vocabulary": 65, "embedding": 64, "units": 512, "length": 100, "batch": 64, "classes": 65,
               "per_step": True},
}


def step_flops(c: dict) -> float:
    """Multiply-adds x 2 of one training step: the forward pass (input projection, recurrence, output
    layer) and a backward pass of twice that."""
    b, t, e, u, k = c["batch"], c["length"], c["embedding"], c["units"], c["classes"]
    forward = 2 * b * t * (e * u + u * u) + 2 * b * (t if c["per_step"] else 1) * u * k
    return 3.0 * forward


def sgemm_gflops(size: int, repeats: int = 10) -> float:
    """float32 matrix products of size x size on the backend's default device."""
    from keras import ops, random

    a = random.normal((size, size))
    b = random.normal((size, size))
    ops.convert_to_numpy(ops.matmul(a, b))
    start = time.perf_counter()
    for _ in range(repeats):
        c = ops.matmul(a, b)
    ops.convert_to_numpy(c[0, 0])  # waits for the device
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def keras_step_ms(c: dict, layer_class, jit: bool, steps: int, policy: str = "float32") -> float:
    import keras

    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy(policy)
    inputs = keras.Input((c["length"],), dtype="int32")
    x = keras.layers.Embedding(c["vocabulary"], c["embedding"])(inputs)
    if layer_class is None:  # no recurrence: what the rest of the step costs (embedding, Adam, output layer)
        x = x if c["per_step"] else keras.layers.GlobalAveragePooling1D()(x)
    else:
        x = layer_class(c["units"], return_sequences=c["per_step"])(x)
    if c["per_step"]:
        outputs = keras.layers.Dense(c["classes"])(x)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        targets = np.random.default_rng(1).integers(0, c["classes"], (c["batch"], c["length"]))
    else:
        outputs = keras.layers.Dense(1)(x)
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        targets = np.random.default_rng(1).integers(0, 2, (c["batch"], 1)).astype("float32")
    model = keras.Model(inputs, outputs)
    keras.config.set_dtype_policy("float32")
    model.compile(keras.optimizers.Adam(1e-3), loss, jit_compile=jit)
    ids = np.random.default_rng(0).integers(0, c["vocabulary"], (c["batch"], c["length"])).astype("int32")
    for _ in range(3):  # tracing, XLA compilation
        model.train_on_batch(ids, targets)
    if keras.backend.backend() == "jax":
        return _jax_step_ms(model, ids, targets, steps)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(ids, targets)
    return (time.perf_counter() - start) / steps * 1000


def _jax_step_ms(model, ids, targets, steps: int) -> float:
    """Keras's compiled JAX train step in a loop, the batch on the device and one wait at the end, as
    PyTorch is timed (and as fit runs steps between syncs): train_on_batch also copies every
    variable back and waits for the loss after each step, about 2 ms a step on the H200."""
    import jax

    batch = (jax.device_put(ids), jax.device_put(targets), None)
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    _, state = model.train_function(state, iter([batch]))
    jax.block_until_ready(state)
    start = time.perf_counter()
    for _ in range(steps):
        _, state = model.train_function(state, iter([batch]))
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / steps * 1000


def torch_step_ms_in_child(name: str, steps: int, compiled: bool = False):
    """PyTorch's step in a process of its own: nn.RNN crashes (SIGSEGV) in a process that has loaded
    TensorFlow (both bring their own oneDNN/MKL). None where PyTorch is not installed."""
    child = subprocess.run([sys.executable, __file__, "--torch-only", name, "--steps", str(steps)]
                           + (["--compiled"] if compiled else []), capture_output=True, text=True)
    if child.returncode != 0:
        raise RuntimeError(f"the PyTorch child failed: {child.stderr[-2000:]}")
    value = json.loads(child.stdout.strip().splitlines()[-1])
    return None if value is None else float(value)


def torch_step_ms(c: dict, steps: int, compiled: bool = False):
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(c["vocabulary"], c["embedding"])
            self.rnn = torch.nn.RNN(c["embedding"], c["units"], batch_first=True)
            self.out = torch.nn.Linear(c["units"], c["classes"])

        def forward(self, ids):
            h, _ = self.rnn(self.embedding(ids))
            return self.out(h if c["per_step"] else h[:, -1])

    device = "cuda" if torch.cuda.is_available() else "cpu"  # nn.RNN is cuDNN's on a GPU
    net = Net().to(device)
    run = torch.compile(net) if compiled else net
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    ids = torch.randint(0, c["vocabulary"], (c["batch"], c["length"]), device=device)
    if c["per_step"]:
        targets = torch.randint(0, c["classes"], (c["batch"], c["length"]), device=device)

        def loss_of(out):
            return torch.nn.functional.cross_entropy(out.reshape(-1, c["classes"]), targets.reshape(-1))
    else:
        targets = torch.randint(0, 2, (c["batch"], 1), device=device).float()

        def loss_of(out):
            return torch.nn.functional.binary_cross_entropy_with_logits(out, targets)

    def step():
        optimizer.zero_grad()
        loss_of(run(ids)).backward()
        optimizer.step()

    for _ in range(3):
        step()
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return (time.perf_counter() - start) / steps * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10, help="timed steps a round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per variant; the median is reported")
    parser.add_argument("--configs", default="reference,charlm")
    parser.add_argument("--result", default="rnn_speed", help="written to bench/results/RESULT.json")
    parser.add_argument("--chunks", default="", help="other values of rnn_apps.layers.CHUNK (steps per loop "
                        "iteration; SCAN_UNROLL on JAX) to time the fast layer with XLA at, e.g. 1,32: "
                        "fast_xla_chunkN")
    parser.add_argument("--bfloat16", action="store_true", help="also time both layers computing in bfloat16 "
                        "(mixed_bfloat16, float32 weights) without XLA: stock_bf16, fast_bf16")
    parser.add_argument("--torch-only", help=argparse.SUPPRESS)  # the PyTorch child: print its ms and exit
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_only:
        print(json.dumps(torch_step_ms(CONFIGS[args.torch_only], args.steps, args.compiled)))
        return

    import keras

    from rnn_apps import layers as our_layers
    from rnn_apps.layers import FastSimpleRNN

    backend = keras.backend.backend()
    on_gpu = backend == "jax" and __import__("jax").default_backend() == "gpu"
    gflops = sgemm_gflops(8192 if on_gpu else 2048)
    print(f"SGEMM {gflops:.1f} GFLOP/s ({'GPU' if on_gpu else f'{os.cpu_count()} cores'})", flush=True)
    results = {"sgemm_gflops": round(gflops, 1), "backend": backend, "device": "gpu" if on_gpu else "cpu",
               "configs": {}}
    for name in args.configs.split(","):
        c = CONFIGS[name]
        limit = step_flops(c) / (gflops * 1e9) * 1000
        # Rounds interleave the variants, so a slow spell of a shared machine hits them all alike.
        # A variant: (layer class, XLA, settings of the fast layer in rnn_apps/layers.py[, dtype policy]).
        variants = {"stock_xla": (keras.layers.SimpleRNN, True, {}), "fast_xla": (FastSimpleRNN, True, {})}
        if backend == "tensorflow":  # JAX always compiles
            # fast: the C++ op of rnn_apps/kernels; fast_loops: the same layer on TensorFlow's while loops;
            # no_recurrence: the model without its recurrent layer, the part of the step no layer can speed up
            variants.update({"stock": (keras.layers.SimpleRNN, False, {}), "fast": (FastSimpleRNN, False, {}),
                             "fast_loops": (FastSimpleRNN, False, {"CPU_KERNEL": "off"}),
                             "no_recurrence": (None, False, {})})
            if args.bfloat16:  # oneDNN's bfloat16 products (AMX), which XLA on the CPU does not use
                variants.update({"stock_bf16": (keras.layers.SimpleRNN, False, {}, "mixed_bfloat16"),
                                 "fast_bf16": (FastSimpleRNN, False, {}, "mixed_bfloat16")})
        chunk_name = "SCAN_UNROLL" if backend == "jax" else "CHUNK"
        for chunk in filter(None, args.chunks.split(",")):
            variants[f"fast_xla_chunk{chunk}"] = (FastSimpleRNN, True, {chunk_name: int(chunk)})
        defaults = {chunk_name: getattr(our_layers, chunk_name), "CPU_KERNEL": our_layers.CPU_KERNEL}
        rounds = {variant: [] for variant in variants}
        for _ in range(args.rounds):
            for variant, (layer_class, jit, settings, *policy) in variants.items():
                for setting, value in {**defaults, **settings}.items():
                    setattr(our_layers, setting, value)
                rounds[variant].append(keras_step_ms(c, layer_class, jit, args.steps, *policy))
            for setting, value in defaults.items():
                setattr(our_layers, setting, value)
            for variant, compiled in (("torch", False),) + ((("torch_compile", True),) if not on_gpu else ()):
                torch_ms = torch_step_ms_in_child(name, args.steps, compiled)
                if torch_ms is not None:
                    rounds.setdefault(variant, []).append(torch_ms)
        timings = {variant: float(np.median(values)) for variant, values in rounds.items()}
        torch_ms = min((timings[k] for k in ("torch", "torch_compile") if k in timings), default=None)
        best = min(timings[k] for k in ("fast", "fast_xla") if k in timings)
        entry = {**c, "step_gflop": round(step_flops(c) / 1e9, 3), "sgemm_limit_ms": round(limit, 2),
                 "ms_per_step": {k: round(v, 2) for k, v in timings.items()},
                 "fast_best_vs_stock_xla": round(timings["stock_xla"] / best, 2),
                 "fast_best_over_sgemm_limit": round(best / limit, 2)}
        if "stock" in timings:
            entry["fast_best_vs_stock"] = round(timings["stock"] / best, 2)
        if torch_ms is not None:
            entry["fast_best_vs_torch_best"] = round(torch_ms / best, 2)
        else:
            entry["torch"] = "not installed here"
        if "fast_bf16" in timings:  # not float32-equal to the stock layer: reported apart
            entry["fast_bf16_vs_stock"] = round(timings["stock"] / timings["fast_bf16"], 2)
            if torch_ms is not None:
                entry["fast_bf16_vs_torch_best"] = round(torch_ms / timings["fast_bf16"], 2)
        results["configs"][name] = entry
        print(name, entry, flush=True)
    common.write(args.result, results)


if __name__ == "__main__":
    main()
