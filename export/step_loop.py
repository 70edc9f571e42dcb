"""The reference decoding loop over a TFLite file's `encode` and `decode_step` signatures: what
a phone app runs, in a few lines, and what parity checks against the Keras decoder
(`rnn_apps/decoding.py`) token for token.

Convention, for every model that decodes on a phone: `encode` returns the decoding state as named
tensors; `decode_step` takes `token` plus every one of them by the same names, and returns
`log_probabilities` plus the names it updates (the recurrent `state`); the rest (encoder outputs,
masks) are passed back unchanged.
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


def greedy(interpreter, encode_inputs: dict, start_id: int, end_id: int, limit: int) -> list:
    """Token ids of the greedy output (END excluded), at most `limit` of them."""
    cache = interpreter.get_signature_runner("encode")(**encode_inputs)
    decode_step = interpreter.get_signature_runner("decode_step")
    token, output = start_id, []
    for _ in range(limit):
        result = decode_step(token=np.array([token], np.int32), **cache)
        token = int(np.argmax(result.pop("log_probabilities")[0]))
        if token == end_id:
            break
        output.append(token)
        cache.update(result)
    return output
