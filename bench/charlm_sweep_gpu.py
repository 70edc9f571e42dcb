"""Which charlm training choices help, at the number of training steps the default config gets
on 2 CPU cores in its time budget: a sweep run on a GPU (the `device` machine, JAX; TensorFlow
is not there), of a JAX twin of the app's model.

The twin is the same math as `rnn_apps/apps/charlm.py`: Embedding (uniform +-0.05) -> `depth`
SimpleRNN layers h_t = tanh(x_t W + h_(t-1) U + b) (glorot-uniform W, orthogonal or identity U,
Keras's input dropout: one mask per sequence) -> Dropout -> Dense; Adam (eps 1e-7) with each
gradient's norm clipped to `clipnorm` (Keras's clipnorm), the rate halving every
`lr_half_life_steps`; float32 matrix products at full precision. Same data split (90/5/5 of
tiny_shakespeare), windows of 128, batch 128. Validation loss is measured as `rnn-apps evaluate`
does: every character, batch 1, the state carried through the whole split; and per window from a
fresh state. Steps, not minutes, are what transfer between machines: read each curve at the step
count the CPU reaches (bench/RESULTS.md).

    python bench/charlm_sweep_gpu.py DATA/input.txt OUT.json first|second [STEPS [EVERY]]
    (results: bench/results/charlm_sweep_first.json, charlm_sweep_second.json)
"""

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_default_matmul_precision", "highest")

WINDOW, BATCH, EMBEDDING, UNITS, DEPTH = 128, 128, 64, 512, 2

SWEEPS = {"first": {  # 3,000 steps
    "constant rate, no dropout": dict(half_life=0, dropout=0.0),
    "half-life 600": dict(half_life=600, dropout=0.0),
    "half-life 600, dropout 0.1": dict(half_life=600, dropout=0.1),
    "half-life 600, dropout 0.2": dict(half_life=600, dropout=0.2),
    "half-life 1000, dropout 0.1": dict(half_life=1000, dropout=0.1),
    "half-life 600, dropout 0.1, identity init": dict(half_life=600, dropout=0.1, init="identity"),
    "half-life 600, dropout 0.1, state carried in training": dict(half_life=600, dropout=0.1, carry=True),
}, "second": {  # 4,000 steps: bfloat16 training makes ~3,500 fit the CPU budget
    "half-life 1500, dropout 0.1": dict(half_life=1500, dropout=0.1),
    "half-life 1000, dropout 0.05": dict(half_life=1000, dropout=0.05),
    "half-life 2000, dropout 0.05": dict(half_life=2000, dropout=0.05),
    "rate 3e-3, half-life 1000, dropout 0.1": dict(half_life=1000, dropout=0.1, rate=3e-3),
}}


def glorot(key, shape):
    limit = np.sqrt(6.0 / sum(shape))
    return jax.random.uniform(key, shape, minval=-limit, maxval=limit)


def init(key, vocab, recurrent="orthogonal"):
    keys = iter(jax.random.split(key, 16))
    params = {"embedding": jax.random.uniform(next(keys), (vocab, EMBEDDING), minval=-0.05, maxval=0.05),
              "out_w": glorot(next(keys), (UNITS, vocab)), "out_b": jnp.zeros(vocab), "rnn": []}
    width = EMBEDDING
    for _ in range(DEPTH):
        u = (jax.nn.initializers.orthogonal()(next(keys), (UNITS, UNITS)) if recurrent == "orthogonal"
             else jnp.eye(UNITS))
        params["rnn"].append({"w": glorot(next(keys), (width, UNITS)), "u": u, "b": jnp.zeros(UNITS)})
        width = UNITS
    return params


def forward(params, ids, states, key, rate):
    x = params["embedding"][ids]  # [B, T, E]
    new_states = []
    for layer, h0 in zip(params["rnn"], states, strict=True):
        if rate > 0:
            key, sub = jax.random.split(key)
            keep = jax.random.bernoulli(sub, 1 - rate, (x.shape[0], x.shape[2])) / (1 - rate)
            x = x * keep[:, None, :]
        projected = x @ layer["w"] + layer["b"]

        def cell(h, xt, u=layer["u"]):
            h = jnp.tanh(xt + h @ u)
            return h, h

        h_last, hs = jax.lax.scan(cell, h0, jnp.swapaxes(projected, 0, 1))
        x = jnp.swapaxes(hs, 0, 1)
        new_states.append(h_last)
    if rate > 0:
        key, sub = jax.random.split(key)
        x = x * jax.random.bernoulli(sub, 1 - rate, x.shape) / (1 - rate)
    return x @ params["out_w"] + params["out_b"], new_states


def loss_fn(params, ids, targets, states, key, rate):
    logits, new_states = forward(params, ids, states, key, rate)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean(), new_states


def clip_each(max_norm):
    def update(grads, state, params=None):
        return jax.tree.map(lambda g: g * jnp.minimum(1.0, max_norm / (jnp.linalg.norm(g) + 1e-12)), grads), state
    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def sweep_one(name, options, train_ids, val_ids, vocab, steps, every):
    rate = options.get("dropout", 0.0)
    peak = options.get("rate", 2e-3)
    schedule = (optax.exponential_decay(peak, options["half_life"], 0.5) if options["half_life"]
                else optax.constant_schedule(peak))
    optimizer = optax.chain(clip_each(1.0), optax.adam(schedule, eps=1e-7))
    params = init(jax.random.PRNGKey(0), vocab, options.get("init", "orthogonal"))
    opt_state = optimizer.init(params)
    zeros = [jnp.zeros((BATCH, UNITS))] * DEPTH

    @jax.jit
    def train_step(params, opt_state, ids, targets, states, key):
        (loss, new_states), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, ids, targets, states, key, rate)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, [jax.lax.stop_gradient(s) for s in new_states]

    @jax.jit
    def carried_loss(params, ids):
        logits, _ = forward(params, ids[None, :-1], [jnp.zeros((1, UNITS))] * DEPTH, None, 0.0)
        return optax.softmax_cross_entropy_with_integer_labels(logits, ids[None, 1:]).mean()

    @jax.jit
    def fresh_loss(params, inputs, targets):
        logits, _ = forward(params, inputs, [jnp.zeros((inputs.shape[0], UNITS))] * DEPTH, None, 0.0)
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

    count = (len(val_ids) - 1) // WINDOW
    starts = np.arange(count) * WINDOW
    val_in, val_out = val_ids[starts[:, None] + np.arange(WINDOW)], val_ids[starts[:, None] + np.arange(WINDOW) + 1]
    rng = np.random.default_rng(0)
    windows = (len(train_ids) - 1) // WINDOW
    # State carried: BATCH streams side by side, each read window after window (reset every epoch).
    stream = windows // BATCH
    curve, step, key, t0 = [], 0, jax.random.PRNGKey(1), time.time()
    while step < steps:
        order = (np.arange(stream * BATCH).reshape(BATCH, stream).T if options.get("carry")
                 else rng.permutation(windows)[: stream * BATCH].reshape(stream, BATCH))
        states = zeros
        for batch in order:
            s = batch * WINDOW
            ids, targets = train_ids[s[:, None] + np.arange(WINDOW)], train_ids[s[:, None] + np.arange(WINDOW) + 1]
            key, sub = jax.random.split(key)
            params, opt_state, loss, new_states = train_step(params, opt_state, ids, targets, states, sub)
            states = new_states if options.get("carry") else zeros
            step += 1
            if step % every == 0 or step == steps:
                curve.append({"step": step, "train_loss": float(loss),
                              "val_carried": float(carried_loss(params, val_ids)),
                              "val_fresh": float(fresh_loss(params, val_in, val_out))})
                print(name, curve[-1], f"{time.time() - t0:.0f}s", flush=True)
            if step == steps:
                break
    return curve


def main(path, out, sweep="first", steps=3000, every=250):
    text = open(path, encoding="utf-8").read()
    a, b = round(0.9 * len(text)), round(0.95 * len(text))
    chars = sorted(set(text[:a]), key=lambda c: (-text[:a].count(c), c))
    index = {c: i + 2 for i, c in enumerate(chars)}
    ids = np.array([index.get(c, 1) for c in text], np.int32)
    results = {"device": str(jax.devices()[0]), "steps": steps, "window": WINDOW, "batch": BATCH, "runs": {}}
    for name, options in SWEEPS[sweep].items():
        results["runs"][name] = sweep_one(name, options, ids[:a], ids[a:b], len(chars) + 2, steps, every)
        with open(out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(a) for a in sys.argv[4:]))
