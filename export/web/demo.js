// The browser's phone clients: what each app's Python phone client (App.exported_inputs and
// App.run_tflite) does, in JavaScript over LiteRT.js, from the files shipped beside each .tflite
// and the rules in its model_card.json. tests/test_browser.py checks them against the Python
// TFLite outputs; written by `rnn-apps demo` (export/demo.py).
import {loadLiteRt, loadAndCompile, Tensor} from '@litertjs/core';

const MAX_BYTES_PER_TOKEN = 32;  // the cards' tokenisation rules: a text is cut to 32 bytes per token
const WHITESPACE = /[ \t\n\r\f\v]+/;  // tf.strings.split's whitespace

const fetchText = async (url) => {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.text();
};
const fetchJson = async (url) => JSON.parse(await fetchText(url));
const fileLines = (text) => text.split('\n').slice(0, -1);  // every vocabulary file ends with "\n"
const indexOf = (tokens, first = 2) => new Map(tokens.map((t, i) => [t, i]).filter(([, i]) => i >= first));
const argmax = (values) => values.reduce((best, v, i) => (v > values[best] ? i : best), 0);

function cutBytes(text, bytes) {
  // the first `bytes` bytes of the UTF-8 text; a character cut in two reads as U+FFFD, as in the graph
  const encoded = new TextEncoder().encode(text);
  return encoded.length <= bytes ? text : new TextDecoder().decode(encoded.slice(0, bytes));
}

function padded(ids, length) {
  const row = new Int32Array(length);
  row.set(ids.slice(0, length));
  return row;
}

// One signature call: {name: [TypedArray, shape]} in, {name: TypedArray} out.
async function call(model, signature, inputs) {
  const tensors = Object.fromEntries(Object.entries(inputs).map(([n, [data, shape]]) => [n, new Tensor(data, shape)]));
  try {
    const results = await model.run(signature, tensors);
    const out = {};
    for (const [name, tensor] of Object.entries(results)) {
      out[name] = tensor.toTypedArray().slice();
      tensor.delete();
    }
    return out;
  } finally {
    Object.values(tensors).forEach((t) => t.delete());
  }
}

function shapesOf(card, file, signature) {
  const inputs = card.signature_specs[file][signature].inputs;
  return Object.fromEntries(Object.entries(inputs).map(([name, spec]) => [name, spec.shape]));
}

// The step-loop convention (export/step_loop.py): `step(token, **cache)` -> log_probabilities and the
// updated state; the rest of the cache (encoder outputs, masks) goes back unchanged.
async function greedySteps(model, signature, shapes, cache, token, endId, limit, onToken) {
  cache = {...cache};
  const output = [];
  for (let i = 0; i < limit; i++) {
    const fed = {token: [new Int32Array([token]), [1]]};
    for (const [name, value] of Object.entries(cache)) fed[name] = [value, shapes[name]];
    const result = await call(model, signature, fed);
    token = argmax(result.log_probabilities);
    if (token === endId) break;
    output.push(token);
    if (onToken) onToken(output);
    delete result.log_probabilities;
    Object.assign(cache, result);
  }
  return output;
}

function zeroState(shapes, fed) {
  return Object.fromEntries(Object.entries(shapes).filter(([n]) => n !== fed)
    .map(([n, shape]) => [n, new Float32Array(shape.reduce((a, b) => a * b, 1))]));
}

// --- sentiment (many-to-one) -----------------------------------------------------------------
function ptbTokens(text) {
  return text.toLowerCase().replace(/n't\b/g, " n't").replace(/'(s|re|ve|ll|d|m)\b/g, " '$1")
    .replace(/([.,!?;:()"])/g, ' $1 ').split(WHITESPACE).filter((t) => t);
}

function regexTokens(text) {
  // MediaPipe's RegexTokenizer ([^\w']+, ASCII \w), each word's lower / Capitalised / UPPER spelling folded
  return text.split(/[^A-Za-z0-9_']+/).filter((t) => t).map((t) => {
    const lower = t.toLowerCase();
    const capitalised = lower.charAt(0).toUpperCase() + lower.slice(1);
    return t === lower || t === lower.toUpperCase() || t === capitalised ? lower : t;
  });
}

const sentiment = {
  title: 'Sentiment', placeholder: 'a gorgeous, witty, seductive movie.',
  async load(folder, file, card) {
    const vocabulary = indexOf(fileLines(await fetchText(`${folder}/vocab.txt`)));
    const labels = fileLines(await fetchText(`${folder}/labels.txt`));
    return {card, vocabulary, labels, model: await loadAndCompile(`${folder}/${file}`, {accelerator: 'wasm'})};
  },
  tokenIds(client, text) {
    const [, length] = client.card.input.shape;
    const tokenise = client.card.tokenizer === 'regex' ? regexTokens : ptbTokens;
    const tokens = tokenise(cutBytes(text, MAX_BYTES_PER_TOKEN * length));
    return padded(tokens.map((t) => client.vocabulary.get(t) ?? 1), length);
  },
  async run(client, text) {
    const ids = this.tokenIds(client, text);
    const out = await call(client.model, 'serving_default', {token_ids: [ids, [1, ids.length]]});
    const probabilities = Array.from(out.probabilities);
    return {token_ids: Array.from(ids), probabilities, label: client.labels[argmax(probabilities)]};
  },
  show: (out) => `${out.label} (${Math.max(...out.probabilities).toFixed(3)})`,
};

// --- digits (one-to-one) ---------------------------------------------------------------------
const digits = {
  title: 'Digits', drawing: true,
  async load(folder, file, card) {
    const labels = fileLines(await fetchText(`${folder}/labels.txt`));
    return {card, labels, model: await loadAndCompile(`${folder}/${file}`, {accelerator: 'wasm'})};
  },
  async run(client, pixels) {  // 64 values, 8x8 row-major, 0 = background .. 16 = ink
    const out = await call(client.model, 'serving_default', {pixels: [Float32Array.from(pixels), [1, 64]]});
    const probabilities = Array.from(out.probabilities);
    return {probabilities, label: client.labels[argmax(probabilities)]};
  },
  show: (out) => `${out.label} (${Math.max(...out.probabilities).toFixed(3)})`,
};

// --- translate (encoder-decoder) -------------------------------------------------------------
const CHARACTER_LANGUAGES = ['ko', 'ja', 'zh'];
const SPACE = '\u2581';

const translate = {
  title: 'Translate', placeholder: '¿Dónde está la biblioteca?',
  async load(folder, file, card) {
    const source = indexOf(fileLines(await fetchText(`${folder}/${card.source.vocabulary}`)));
    const target = fileLines(await fetchText(`${folder}/${card.target.vocabulary}`));
    return {card, file, source, target, model: await loadAndCompile(`${folder}/${file}`, {accelerator: 'wasm'})};
  },
  sourceTokens(client, text) {
    const {language, length} = client.card.source;
    text = cutBytes(text, MAX_BYTES_PER_TOKEN * length);
    if (CHARACTER_LANGUAGES.includes(language)) return Array.from(text.trim().replace(/\s+/g, SPACE));
    return text.toLowerCase().replace(/([¿¡?!.,;:"()«»…])/g, ' $1 ').split(WHITESPACE).filter((t) => t);
  },
  detokenize(client, tokens) {
    if (CHARACTER_LANGUAGES.includes(client.card.target.language)) return tokens.join('').split(SPACE).join(' ').trim();
    return tokens.join(' ').replace(/ +/g, ' ').trim().replace(/ ([?!.,;:)»…])/g, '$1').replace(/([¿¡(«]) /g, '$1');
  },
  async run(client, text, onText) {
    const {card, file} = client;
    const ids = padded(this.sourceTokens(client, text).map((t) => client.source.get(t) ?? 1), card.source.length);
    const rule = card.max_output_tokens;
    const count = ids.filter((id) => id !== 0).length;
    const limit = count ? Math.min(rule.target_length, Math.ceil(rule.length_ratio * count) + rule.length_extra) : 0;
    const cache = await call(client.model, 'encode', {source_ids: [ids, [1, ids.length]]});
    const words = (output) => output.map((id) => client.target[id]);
    const output = await greedySteps(client.model, 'decode_step', shapesOf(card, file, 'decode_step'), cache,
      card.target.start_id, card.target.end_id, limit,
      onText && ((so_far) => onText(this.detokenize(client, words(so_far)))));
    return {token_ids: output, translation: this.detokenize(client, words(output))};
  },
  show: (out) => out.translation,
};

// --- charlm (many-to-many, per step) ---------------------------------------------------------
const MAX_PRIME = 1000, CONTINUATION = 100, EMPTY_PRIME = '\n';

const charlm = {
  title: 'Character LM', placeholder: 'ROMEO:', multiline: true,
  async load(folder, file, card) {
    const characters = await fetchJson(`${folder}/${card.vocabulary.file}`);
    return {card, file, characters, index: indexOf(characters),
            model: await loadAndCompile(`${folder}/${file}`, {accelerator: 'wasm'})};
  },
  async run(client, prime, onText) {
    const {card, file, characters} = client;
    const shapes = shapesOf(card, file, 'step');
    let ids = Array.from(prime).slice(-MAX_PRIME).map((c) => client.index.get(c) ?? 1);
    if (!ids.length) ids = [client.index.get(EMPTY_PRIME) ?? 1];
    let cache = zeroState(shapes, 'token');
    for (const token of ids.slice(0, -1)) {  // read the prime, keeping only the state
      const fed = {token: [new Int32Array([token]), [1]]};
      for (const [name, value] of Object.entries(cache)) fed[name] = [value, shapes[name]];
      const result = await call(client.model, 'step', fed);
      delete result.log_probabilities;
      cache = result;
    }
    const output = await greedySteps(client.model, 'step', shapes, cache, ids[ids.length - 1], null, CONTINUATION,
      onText && ((so_far) => onText(so_far.map((id) => characters[id]).join(''))));
    return {token_ids: output, text: output.map((id) => characters[id]).join('')};
  },
  show: (out) => out.text,
};

// --- tagger (many-to-many, per step) --------------------------------------------------------
const MAX_TEXT_BYTES = 65536, SUFFIX_LENGTH = 3;
const SHAPE_BITS = [/^\p{Lu}/u, /^[^\p{Ll}]*\p{Lu}[^\p{Ll}]*$/u, /\d/, /-/, /^[^\p{L}\d]+$/u];

const tagger = {
  title: 'Part-of-speech tagger', placeholder: "I didn't see the 3 dogs in New-York.",
  async load(folder, file, card) {
    const [words, suffixes, tags] = await Promise.all(['words.txt', 'suffixes.txt', 'tags.txt']
      .map(async (name) => fileLines(await fetchText(`${folder}/${name}`))));
    return {card, words: indexOf(words), suffixes: indexOf(suffixes), tags,
            model: await loadAndCompile(`${folder}/${file}`, {accelerator: 'wasm'})};
  },
  tokens(text) {  // UD English style: clitics and punctuation split off (the card's tokenisation)
    return cutBytes(text, MAX_TEXT_BYTES).replace(/(n't)\b/gi, ' $1').replace(/('(s|re|ve|ll|d|m))\b/gi, ' $1')
      .replace(/([.,!?;:()"])/g, ' $1 ').trim().split(WHITESPACE).filter((t) => t);
  },
  async run(client, text) {
    const length = client.card.max_length;
    const tokens = this.tokens(text).slice(0, length);
    const lowered = tokens.map((t) => t.toLowerCase());
    const inputs = {
      word_ids: lowered.map((t) => client.words.get(t) ?? 1),
      suffix_ids: lowered.map((t) => client.suffixes.get(Array.from(t).slice(-SUFFIX_LENGTH).join('')) ?? 1),
      shape_ids: tokens.map((t) => 1 + SHAPE_BITS.reduce((bits, re, i) => bits + (re.test(t) ? 1 << i : 0), 0)),
    };
    const fed = Object.fromEntries(Object.entries(inputs).map(([n, ids]) => [n, [padded(ids, length), [1, length]]]));
    const out = await call(client.model, 'serving_default', fed);
    const classes = client.tags.length;
    const rows = tokens.map((_, i) => Array.from(out.probabilities.slice(i * classes, (i + 1) * classes)));
    return {tokens, ...inputs, tags: rows.map((row) => client.tags[argmax(row)]), probabilities: rows};
  },
  show: (out) => out.tokens.map((t, i) => `${t}/${out.tags[i]}`).join(' '),
};

const CLIENTS = {sentiment, digits, translate, charlm, tagger};

// --- the page --------------------------------------------------------------------------------
function drawingPad(section, onDone) {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 160;
  canvas.className = 'pad';
  const context = canvas.getContext('2d');
  context.lineWidth = 16;
  context.lineCap = 'round';
  let drawing = false;
  const at = (e) => [e.offsetX, e.offsetY];
  canvas.onpointerdown = (e) => { drawing = true; context.beginPath(); context.moveTo(...at(e)); };
  canvas.onpointermove = (e) => { if (drawing) { context.lineTo(...at(e)); context.stroke(); } };
  canvas.onpointerup = () => { drawing = false; onDone(pixelsOf(context)); };
  section.append(canvas);
  return () => context.clearRect(0, 0, canvas.width, canvas.height);
}

function pixelsOf(context) {
  // the ink's share of each of 8x8 cells, 0..16: the digits data's layout
  const {width, height} = context.canvas;
  const alpha = context.getImageData(0, 0, width, height).data;
  const pixels = new Array(64).fill(0);
  const cell = width / 8;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) pixels[Math.floor(y / cell) * 8 + Math.floor(x / cell)] += alpha[(y * width + x) * 4 + 3];
  }
  return pixels.map((sum) => (16 * sum) / (255 * cell * cell));
}

function section(name, client, clientCode) {
  const box = document.createElement('section');
  box.innerHTML = `<h2>${clientCode.title} <small>${name} v${client.version}</small></h2>`;
  const result = document.createElement('output');
  const show = async (input) => {
    result.textContent = '…';
    try {
      const out = await clientCode.run(client, input, (partial) => { result.textContent = partial; });
      result.textContent = clientCode.show(out);
    } catch (error) {
      result.textContent = `error: ${error.message}`;
    }
  };
  if (clientCode.drawing) {
    const clear = drawingPad(box, show);
    const button = document.createElement('button');
    button.textContent = 'clear';
    button.onclick = () => { clear(); result.textContent = ''; };
    box.append(button);
  } else {
    const input = document.createElement(clientCode.multiline ? 'textarea' : 'input');
    input.value = clientCode.placeholder;
    const button = document.createElement('button');
    button.textContent = 'run';
    button.onclick = () => show(input.value);
    box.append(input, button);
    show(input.value);  // an answer at once, for the example in the box
  }
  box.append(result);
  document.getElementById('apps').append(box);
}

async function main() {
  const status = document.getElementById('status');
  await loadLiteRt('./litertjs/core/wasm/');
  const apps = await fetchJson('apps.json');
  const clients = {};
  for (const {app, folder, file, version} of apps) {
    const card = await fetchJson(`${folder}/model_card.json`);
    clients[app] = {...(await CLIENTS[app].load(folder, file, card)), version};
  }
  if (new URLSearchParams(location.search).has('test')) {
    // tests/test_browser.py: run the fixed inputs and post every output back
    const inputs = await fetchJson('test_inputs.json');
    const outputs = {};
    for (const [app, items] of Object.entries(inputs)) {
      outputs[app] = [];
      for (const item of items) outputs[app].push(await CLIENTS[app].run(clients[app], item));
    }
    await fetch('/outputs', {method: 'POST', body: JSON.stringify(outputs)});
  }
  for (const {app} of apps) section(app, clients[app], CLIENTS[app]);
  status.textContent = `LiteRT.js (WebAssembly) runs ${apps.length} models in this page; nothing leaves it.`;
}

main().catch(async (error) => {
  document.getElementById('status').textContent = `error: ${error.message}`;
  if (new URLSearchParams(location.search).has('test')) {
    await fetch('/outputs', {method: 'POST', body: JSON.stringify({error: `${error.message}\n${error.stack}`})});
  }
});
