"""What every app that writes a sequence shares (translate, caption, charlm): the phone client's
greedy loop and the rows `query` prints.

A phone runs a generating model the same way whatever wrote the cache: it gets a cache and a
first token (`phone_start`: translate and caption call their encode signature and start from the
start token; charlm reads its prime through `step` and starts from the prime's last character),
then feeds one token at a time to the step signature, taking the likeliest next token, until the
end token or the limit (export/step_loop.py is the reference loop). `on_phone` is that loop, once;
parity, `query`, phone quality and the quantization report run it.

An app of this kind writes:
  - `output_name`: the SavedModel output holding the written text ("translation", "caption", "text");
  - `step_signature` and `end_id` (None: the loop writes `limit` tokens);
  - `phone_start(interpreter, feed) -> (cache, first token)`, from one input's feed;
  - `phone_text(token_ids, words, language) -> bytes [inputs]`: padded ids -> texts;
  - `phone_vocabulary(folder, card) -> (words, language)`, from the files shipped beside the .tflite;
  - `exported_inputs` giving TFLite inputs {"feeds": [one feed per input], "limits": [int per input]}.
"""

import numpy as np

from export import step_loop
from rnn_apps import config as config_lib
from rnn_apps.app import App, read_card


class GeneratingApp(App):
    output_name: str
    step_signature: str
    end_id: int | None
    query_key = None  # the query rows' name for the output (default: output_name)
    # Every generating app's (an app adds its own: {**Family.config_checks, ...}): gradients are
    # clipped to clipnorm (the families' compile), and one model writes: averaging the steps of
    # several models is not built.
    config_checks = {"clipnorm": config_lib.POSITIVE_NUMBER, "members": config_lib.one_of(1)}

    def phone_start(self, interpreter, feed) -> tuple:
        raise NotImplementedError

    def phone_text(self, token_ids: np.ndarray, words: list, language) -> np.ndarray:
        raise NotImplementedError

    def phone_vocabulary(self, folder, card: dict) -> tuple:
        """-> (the output words, their language), from the files shipped beside the .tflite (in
        `folder`) and its model card."""
        raise NotImplementedError

    def on_phone(self, interpreter, feeds: list, limits, words: list, language=None) -> dict:
        """What a phone computes, one input at a time: `phone_start`, then the greedy step loop;
        outputs shaped like the SavedModel's (ids padded with 0, texts)."""
        rows = []
        for feed, limit in zip(feeds, limits, strict=True):
            cache, token = self.phone_start(interpreter, feed)
            rows.append(step_loop.greedy(interpreter, cache, token, self.end_id, int(limit), self.step_signature))
        token_ids, lengths = step_loop.padded(rows)
        return {"token_ids": token_ids, "lengths": lengths,
                self.output_name: self.phone_text(token_ids, words, language)}

    def run_tflite(self, interpreter, tflite_inputs, tflite_dir):
        card = read_card(tflite_dir)
        words, language = self.phone_vocabulary(tflite_dir, card)
        return self.on_phone(interpreter, tflite_inputs["feeds"], tflite_inputs["limits"], words, language)

    def query_rows(self, names, served, on_phone, tflite_dir):
        key = self.query_key or self.output_name
        return [{"input": name, "saved_model": {key: served[self.output_name][i].decode("utf-8")},
                 "tflite": {key: on_phone[self.output_name][i].decode("utf-8")}} for i, name in enumerate(names)]

    def format_query(self, row):
        key = self.query_key or self.output_name
        return (f"SavedModel v{row['version']}: {self.shown(row['saved_model'][key])}  "
                f"TFLite: {self.shown(row['tflite'][key])}  <- {self.shown(row['input'])}")

    def shown(self, text: str) -> str:
        """A text as a query line shows it."""
        return text
