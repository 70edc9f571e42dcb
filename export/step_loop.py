"""The reference decoding loops over a TFLite file's step signature: what a phone app runs, in a
few lines, and what parity checks against the Keras decoder (`rnn_apps/decoding.py`) token for
token.

Convention, for every model that decodes on a phone: the decoding state is a set of named tensors
(a decoder's come from its `encode` signature; a language model's start as zeros). The step
signature (`decode_step`, `step`) takes `token` plus every one of them by the same names, and
returns `log_probabilities` plus the names it updates (the recurrent state); the rest (encoder
outputs, masks) are passed back unchanged.
"""

import numpy as np

GREEDY_PSEUDOCODE = [
    "cache = encode(source_ids=padded ids [1, L])",
    "token = start_id; output = []",
    "repeat at most max_output_tokens times:",
    "    result = decode_step(token=[token], **cache)",
    "    token = argmax(result.log_probabilities[0])",
    "    if token == end_id: stop",
    "    output.append(token); cache.state = result.state",
]


def greedy(interpreter, cache: dict, token: int, end_id, limit: int, signature: str = "decode_step") -> list:
    """Token ids of the greedy output after feeding `token` with state `cache` (END, if any,
    excluded), at most `limit` of them."""
    return greedy_steps(interpreter.get_signature_runner(signature), cache, token, end_id, limit)


def greedy_steps(step, cache: dict, token: int, end_id, limit: int) -> list:
    """`greedy` over any `step(token=int32 [1], **cache) -> {"log_probabilities": [1, V], **updated}`:
    a TFLite signature runner, or the Keras model's step (the tests check the batched decoder with it)."""
    cache, output = dict(cache), []
    for _ in range(limit):
        result = step(token=np.array([token], np.int32), **cache)
        token = int(np.argmax(result.pop("log_probabilities")[0]))
        if token == end_id:
            break
        output.append(token)
        cache.update(result)
    return output


def padded(rows: list) -> tuple:
    """Token-id lists of several lengths (one per input) -> (token_ids int32 [inputs, longest],
    padded with 0; lengths int32 [inputs]): decoded ids shaped as the SavedModel returns them."""
    width = max([len(r) for r in rows] + [0])
    token_ids = np.array([list(r) + [0] * (width - len(r)) for r in rows], np.int32).reshape(len(rows), width)
    return token_ids, np.array([len(r) for r in rows], np.int32)


def zero_state(interpreter, signature: str = "step", fed: str = "token") -> dict:
    """Zeros for every input of the step signature but the one `fed` each step, at batch 1: a
    language model's (or a streaming classifier's) state before it reads anything."""
    details = interpreter.get_signature_runner(signature).get_input_details()
    return {name: np.zeros([1, *d["shape_signature"][1:]], d["dtype"]) for name, d in details.items()
            if name != fed}


def label_stream(interpreter, frames, signature: str = "step") -> np.ndarray:
    """A streaming classifier's per-step outputs: `frames` [T, ...] fed one at a time as `frame`
    from zero states -> probabilities [T, classes]; what a device watching a camera runs."""
    step = interpreter.get_signature_runner(signature)
    cache, outputs = zero_state(interpreter, signature, fed="frame"), []
    for frame in frames:
        result = step(frame=np.asarray(frame, np.float32)[None], **cache)
        outputs.append(result["probabilities"][0])
        cache = {name: result[name] for name in cache}  # the state; label_id is for the app
    return np.array(outputs, np.float32).reshape(len(outputs), -1)


def read(interpreter, tokens, cache: dict, signature: str = "step") -> dict:
    """The state after feeding `tokens` one at a time (a prime, before writing)."""
    step = interpreter.get_signature_runner(signature)
    cache = dict(cache)
    for token in tokens:
        result = step(token=np.array([token], np.int32), **cache)
        result.pop("log_probabilities")
        cache.update(result)
    return cache
