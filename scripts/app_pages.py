"""Writes docs/apps/<app>.md, one page per registered app, from what the code already says: the
registry's description, a diagram of the app's topology and of what it exports, the app module's
docstring (data, shapes, commands), the phone client as pseudocode for its family, its figures
under the benchmark protocol (bench/results/*.json), and what those benchmarks recorded of their
first seed: the loss by epoch (docs/images/<benchmark>_loss.svg) and sample outputs. Nothing on a
page is typed by hand, so a page
cannot drift from its app; tests/test_app_pages.py fails when a page is out of date.

    .venv/bin/python scripts/app_pages.py
"""

import ast
import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import protocol  # noqa: E402
from rnn_apps import registry  # noqa: E402

PAGES = REPO / "docs" / "apps"
IMAGES = REPO / "docs" / "images"

# What each topology looks like, as Mermaid (GitHub draws it): the recurrence is the same SimpleRNN
# cell at every step; the boxes on the right are what `rnn-apps export` writes.
DIAGRAMS = {
    "one-to-one": """flowchart LR
  x["one input (8x8 pixels, read as 8 rows)"] --> rnn["SimpleRNN over the rows"] --> y["one label"]""",
    "many-to-one": """flowchart LR
  x1["token 1"] --> h1["h1"] --> h2["h2"] --> hT["hT"]
  x2["token 2"] --> h2
  xT["token T"] --> hT
  hT --> y["one label"]""",
    "many-to-many (per step)": """flowchart LR
  x1["piece 1"] --> h1["h1"] --> y1["label 1"]
  x2["piece 2"] --> h2["h2"] --> y2["label 2"]
  xT["piece T"] --> hT["hT"] --> yT["label T"]
  h1 --> h2 --> hT""",
    "many-to-many (encoder-decoder)": """flowchart LR
  s["source tokens"] --> enc["encoder SimpleRNN"] --> st["state + encoder outputs"]
  st --> dec["decoder step (SimpleRNN cell + attention)"]
  dec -->|"next token, fed back"| dec
  dec --> t["target tokens"]""",
    "one-to-many": """flowchart LR
  img["one image"] --> enc["image encoder"] --> h0["initial state"]
  h0 --> dec["decoder step (SimpleRNN cell)"]
  dec -->|"next word, fed back"| dec
  dec --> words["caption words"]""",
    "many-to-many (training), one-to-many (writing)": """flowchart LR
  p["prime characters"] --> read["SimpleRNN reads them"] --> h["state"]
  h --> step["step (the same cells, one character)"]
  step -->|"next character, fed back"| step
  step --> text["written text"]""",
}

EXPORTS = """flowchart LR
  run["run folder (checkpoints, vocabularies)"] --> export["rnn-apps export"]
  export --> sm["SavedModel: TF Serving (preprocessing in the graph)"]
  export --> tfl[".tflite (builtin ops) + files + model_card.json: phones"]
  export --> parity["parity: Keras = SavedModel = TFLite"]"""

# The phone client of each family: what an Android engineer writes around the .tflite, in the
# words of model_card.json (the app's own page names its files and inputs above).
PHONE_CLIENTS = {
    "ClassifierApp": """val card = readJson("model_card.json"); val labels = readLines("labels.txt")
val input = preprocess(raw)            // as the card's input says: token ids from vocab.txt, or 64 pixels
val out = interpreter.runSignature(mapOf(card.input.name to input), "serving_default")
val probabilities = out["probabilities"]!![0]
show(labels[argmax(probabilities)], probabilities.max())""",
    "LabelSteps": """val card = readJson("model_card.json"); val tags = readLines("tags.txt")
val pieces = tokenise(text, card.tokenisation).take(card.max_length)
val inputs = card.inputs.keys.associateWith { name -> ids(pieces, name).padEnd(card.max_length, 0) }
val probabilities = interpreter.runSignature(inputs, "serving_default")["probabilities"]!![0]
pieces.forEachIndexed { i, piece -> show(piece, tags[argmax(probabilities[i])]) }""",
    "EncoderDecoderApp": """val card = readJson("model_card.json")        // its signatures name every tensor
val encode = card.signatures.keys.first { it != "decode_step" }   // encode, encode_image, encode_features
var cache = interpreter.runSignature(encoderInputs(raw), encode)  // state (+ what decode_step reads back)
var token = card.start_id; val output = mutableListOf<Int>()
repeat(maxOutputTokens(card, raw)) {
    val result = interpreter.runSignature(mapOf("token" to intArrayOf(token)) + cache, "decode_step")
    token = argmax(result["log_probabilities"]!![0]); if (token == card.end_id) return@repeat
    output += token; cache = cache + ("state" to result["state"]!!)
}
show(detokenise(output, readLines(card.target?.vocabulary ?: card.vocabulary)))""",
    "LanguageModelApp": """var cache = zeros(card.state_shapes)                  // state_0, state_1, ...
for (c in prime) cache = step(c, cache).state           // read the prime through step
repeat(length) {
    val result = interpreter.runSignature(mapOf("token" to intArrayOf(token)) + cache, "step")
    token = sample(result["log_probabilities"]!![0], temperature, topK)
    output += token; cache = result.minus("log_probabilities")   // the new state
}
show(output.map { vocabulary[it] }.joinToString(""))""",
    "LabelFrames": """var state = zeros(card.state_shapes)                 // state_0, state_1, previous_frame
for (frame in camera.frames()) {                      // normalised as card.statistics says
    val out = interpreter.runSignature(mapOf("frame" to frame) + state, "step")
    show(labels[out["label_id"]!![0]])                // the label of the frame card.lookahead_frames back
    state = out.filterKeys { it in state.keys }
}""",
}


def family(app) -> str:
    names = [cls.__name__ for cls in type(app).__mro__]
    return next(known for known in PHONE_CLIENTS if known in names)


def client_code(app) -> dict:
    """{module: [hooks]}: where the app's phone client is written (its own module, or its family's)."""
    found = {}
    # Every app has a preprocessor; those with a phone constructor (from_card) are the client's start.
    preprocessor = app.preprocessor
    phone = [hook for hook in ("from_card", "phone_feed", "output_words") if hasattr(preprocessor, hook)]
    if phone:
        found[f"{preprocessor.__module__}.{preprocessor.__name__}"] = phone
    for hook in ("exported_inputs", "run_tflite"):
        found.setdefault(getattr(type(app), hook).__module__, []).append(hook)
    return found


def docstring(name: str) -> str:
    source = Path(importlib.util.find_spec(registry.module_path(name)).origin).read_text(encoding="utf-8")
    return ast.get_docstring(ast.parse(source)) or ""


def as_markdown(text: str) -> str:
    """A module docstring as markdown: its indented command lines become a bash block."""
    out, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("    "):
            block.append(line[4:])
            continue
        if block:
            out += ["```bash", *block, "```"]
            block = []
        out.append(line)
    return "\n".join(out).rstrip() + "\n"


def figures(name: str) -> list:
    """Lines of the app's results under the protocol, read from bench/results."""
    lines = []
    for benchmark, spec in protocol.BENCHMARKS.items():
        if spec["app"] != name:
            continue
        path = REPO / "bench" / "results" / f"{benchmark}.json"
        result = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(result.get("seeds"), list):
            lines.append(f"- `{benchmark}`: not measured under the protocol yet (`python -m bench run {benchmark}`)")
            continue
        for metric, stats in result["summary"].items():
            test = stats.get("test") or {}
            if "mean" in test:
                lines.append(f"- `{benchmark}` {metric}: {test['mean']:.4f} ± {test['std']:.4f} on test over "
                             f"{test['n']} seeds ({result['commit']}, {result['date']})")
    return lines


def pictures(name: str) -> tuple:
    """(markdown lines, {image file: SVG}) for what the app's benchmarks recorded of their first
    seed: its loss by epoch (the chart `rnn-apps report` draws) and the outputs its test evaluation
    showed (captions, translations, a written text)."""
    from rnn_apps.report import loss_chart

    lines, images = [], {}
    for benchmark, spec in protocol.BENCHMARKS.items():
        path = REPO / "bench" / "results" / f"{benchmark}.json"
        result = json.loads(path.read_text()) if spec["app"] == name and path.exists() else {}
        seeds = result.get("seeds")
        if not isinstance(seeds, list) or not seeds or not seeds[0].get("history"):
            continue
        members = result.get("config", {}).get("members", 1)
        file = f"{benchmark}_loss.svg"
        images[file] = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                        + loss_chart(seeds[0]["history"], seeds[0].get("best_epoch")) + "\n")
        of_ensemble = f" (the first of its {members} members)" if members > 1 else ""
        lines += [f"`{benchmark}`, seed 0{of_ensemble}:", "",
                  f"![{benchmark}: training and validation loss by epoch](../images/{file})", ""]
        for sample in seeds[0].get("samples", []):
            lines.append("- " + "; ".join(f"{key}: {json.dumps(value, ensure_ascii=False)[:300]}"
                                          for key, value in sample.items()))
        lines += [""] if seeds[0].get("samples") else []
    return lines, images


def page(name: str) -> str:
    app = registry.get(name)
    parts = [f"# {name}: {app.task}", "",
             f"Topology: {app.topology}. Data here: `{app.default_data[0]}`"
             + (f"; online: TFDS `{app.default_data[-1]}`." if len(app.default_data) > 1 else "."), "",
             "<!-- generated by scripts/app_pages.py from the code; edit the app module, not this page -->", "",
             "```mermaid", DIAGRAMS.get(app.topology, DIAGRAMS["many-to-one"]), "```", "",
             "## What the app module says", "", as_markdown(docstring(name)),
             "## On a phone: the client around the .tflite (Kotlin-like pseudocode)", "",
             "What parity, `rnn-apps query` and the quantization report run, in Python: "
             + ", ".join(f"`{where}` (`{'`, `'.join(hooks)}`)" for where, hooks in client_code(app).items()) + ".", "",
             "```kotlin", PHONE_CLIENTS[family(app)], "```", "",
             "## From a run to the servers", "", "```mermaid", EXPORTS, "```", "",
             "## Figures (bench/RESULTS.md has how, where and when)", "", *figures(name), ""]
    shown = pictures(name)[0]
    if shown:
        parts += ["## Training and outputs, as a benchmark ran them", "", *shown]
    return "\n".join(parts)


def write() -> list:
    """Writes every page; returns the names of those that changed."""
    PAGES.mkdir(parents=True, exist_ok=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    changed = []
    for name in registry.names():
        for file, svg in pictures(name)[1].items():
            if not (IMAGES / file).exists() or (IMAGES / file).read_text(encoding="utf-8") != svg:
                (IMAGES / file).write_text(svg, encoding="utf-8")
        path = PAGES / f"{name}.md"
        text = page(name)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    return changed


if __name__ == "__main__":
    print("written:", ", ".join(write()) or "nothing changed")
