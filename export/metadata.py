"""TFLite metadata inside every .tflite: what Android Studio's ML Model Binding, MediaPipe Tasks and
the LiteRT support library read, so that the files a phone app needs travel in the model itself.

Written with the TFLite Metadata schema's generated flatbuffer classes (`metadata_schema.fbs`, as
the `mediapipe` wheel ships them: its own metadata writers do not import in mediapipe 1.x, see
foundation/internals.py) and TensorFlow's generated TFLite schema:
  - a `TFLITE_METADATA` buffer: the model's name, description (the app's task and topology, from
    the model card), version, author and licence; per input and output tensor of the first
    signature its name and what it means (from the card); the associated files;
  - the associated files (vocabularies, label lists) zipped onto the end of the file, as the TFLite
    Metadata populator does: the .tflite is also a zip archive of them. The complete model_card.json
    stays beside the file (it states every file's size and quality, this one's too).
Reading it back (`read`) uses the same classes; tests/test_contract.py does it for every app.
"""

import io
import zipfile
from pathlib import Path

import flatbuffers
import numpy as np

from foundation import internals

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"  # metadata_schema.fbs's file_identifier
MODEL_IDENTIFIER = b"TFL3"
LABEL_FILES = ("labels.txt", "tags.txt")  # one name per output class: TENSOR_AXIS_LABELS


def attach(path: Path, assets: dict, card: dict, version: str):
    """Write the metadata (what `card`, the app's model card, says of the model and its tensors) and
    `assets` ({file name: text}: vocabularies, labels) into the .tflite at `path`, replacing any
    metadata it held."""
    from tensorflow.lite.python import schema_py_generated as tflite_schema

    path = Path(path)
    model = tflite_schema.ModelT.InitFromObj(tflite_schema.Model.GetRootAsModel(path.read_bytes(), 0))
    buffer = tflite_schema.BufferT()
    buffer.data = np.frombuffer(_metadata(model, card, assets, version), np.uint8)
    model.buffers.append(buffer)
    entry = tflite_schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME] + [entry]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=MODEL_IDENTIFIER)
    packed = io.BytesIO(bytes(builder.Output()))
    packed.seek(0, io.SEEK_END)
    with zipfile.ZipFile(packed, "a") as archive:  # appended after the flatbuffer, as the populator does
        for name, text in sorted(assets.items()):
            archive.writestr(name, text)
    path.write_bytes(packed.getvalue())


def _metadata(model, card: dict, assets: dict, version: str) -> bytes:
    schema = internals.tflite_metadata_schema()
    # The first signature's subgraph (a decoder's `encode`; the classifier's serving_default): metadata
    # describes one subgraph's tensors in its own order; the others are named in the description.
    signature = model.signatureDefs[0] if model.signatureDefs else None
    subgraph = model.subgraphs[signature.subgraphIndex if signature else 0]
    meta = schema.ModelMetadataT()
    meta.name = f"rnn_apps {card.get('app', '')}".strip()
    meta.description = (f"{card.get('task', '')} ({card.get('topology', '')}), a Keras SimpleRNN exported by "
                        "rnn_apps with builtin ops only. model_card.json, shipped beside the file, says how to build "
                        "the inputs and read the outputs; signatures: "
                        + ", ".join(_name(s.signatureKey) for s in (model.signatureDefs or [])))
    meta.version = version
    meta.author = "rnn_apps"
    meta.license = "Apache-2.0 (the code); the training data's own licence: its SOURCE.md"
    described = {**card.get("inputs", {}), **card.get("outputs", {})}
    if isinstance(card.get("input"), dict):
        described[card["input"].get("name", "")] = card["input"].get("layout") or card["input"].get("padding", "")

    image = card.get("input", {}).get("image") if isinstance(card.get("input"), dict) else None
    tokenizer = card.get("input", {}).get("regex_tokenizer") if isinstance(card.get("input"), dict) else None

    def tensors(indices):
        out = []
        for index in indices:
            tensor = schema.TensorMetadataT()
            tensor.name = _signature_name(signature, subgraph, index)
            tensor.description = str(described.get(tensor.name, ""))
            files = [_file(schema, name) for name in assets if name in LABEL_FILES] \
                if "probabilit" in tensor.name else []
            tensor.associatedFiles = files or None
            if files:  # class scores: what MediaPipe's classifiers and Android Studio read as a head
                tensor.content = _content(schema, schema.ContentProperties.FeatureProperties,
                                          schema.FeaturePropertiesT())
            if image and tensor.name == card["input"]["name"]:
                _describe_image(schema, tensor, image)
            if tokenizer and tensor.name == card["input"]["name"]:
                _describe_tokenizer(schema, tensor, tokenizer)
            out.append(tensor)
        return out

    graph = schema.SubGraphMetadataT()
    graph.name = _name(signature.signatureKey) if signature else "main"
    graph.inputTensorMetadata = tensors(subgraph.inputs)
    graph.outputTensorMetadata = tensors(subgraph.outputs)
    tensor_files = set(LABEL_FILES) | ({tokenizer["vocabulary"]} if tokenizer else set())
    graph.associatedFiles = [_file(schema, name) for name in sorted(assets) if name not in tensor_files] or None
    meta.subgraphMetadata = [graph]
    # RegexTokenizerOptions came with metadata schema 1.2.1: an older parser would skip the tokenizer
    meta.minParserVersion = "1.2.1" if tokenizer else "1.0.0"
    builder = flatbuffers.Builder(1024)
    builder.Finish(meta.Pack(builder), file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _content(schema, kind, properties):
    content = schema.ContentT()
    content.contentPropertiesType, content.contentProperties = kind, properties
    return content


def _describe_image(schema, tensor, image: dict):
    """An image input as MediaPipe's ImageClassifier and Android Studio read it: colour space, the
    normalisation (input = (pixel - mean) / std) and the value range."""
    properties = schema.ImagePropertiesT()
    properties.colorSpace = getattr(schema.ColorSpaceType, image["color"])
    tensor.content = _content(schema, schema.ContentProperties.ImageProperties, properties)
    normalization = schema.ProcessUnitT()
    normalization.optionsType = schema.ProcessUnitOptions.NormalizationOptions
    normalization.options = schema.NormalizationOptionsT()
    normalization.options.mean, normalization.options.std = list(image["mean"]), list(image["std"])
    tensor.processUnits = [normalization]
    tensor.stats = schema.StatsT()
    tensor.stats.min, tensor.stats.max = [float(image["range"][0])], [float(image["range"][1])]


def _describe_tokenizer(schema, tensor, tokenizer: dict):
    """Token ids as MediaPipe's TextClassifier makes them from raw text: its RegexTokenizer splits on
    the pattern and looks each token up in the vocabulary file ("token id" lines)."""
    tensor.content = _content(schema, schema.ContentProperties.FeatureProperties, schema.FeaturePropertiesT())
    options = schema.RegexTokenizerOptionsT()
    options.delimRegexPattern = tokenizer["delimiter"]
    vocabulary = _file(schema, tokenizer["vocabulary"])
    vocabulary.description = "a 'token id' line per spelling; <PAD> and <UNKNOWN> name ids 0 and 1"
    options.vocabFile = [vocabulary]
    unit = schema.ProcessUnitT()
    unit.optionsType, unit.options = schema.ProcessUnitOptions.RegexTokenizerOptions, options
    tensor.processUnits = [unit]


def _file(schema, name: str):
    associated = schema.AssociatedFileT()
    associated.name = name
    labels = name in LABEL_FILES
    associated.type = schema.AssociatedFileType.TENSOR_AXIS_LABELS if labels else schema.AssociatedFileType.VOCABULARY
    associated.description = "line i = class i" if labels else "line i = id i"
    return associated


def _signature_name(signature, subgraph, tensor_index: int) -> str:
    """The signature's name for a tensor of its subgraph (what a client calls it), else the tensor's own."""
    for io_map in ((signature.inputs or []) + (signature.outputs or [])) if signature else []:
        if io_map.tensorIndex == tensor_index:
            return _name(io_map.name)
    return _name(subgraph.tensors[tensor_index].name)


def _name(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value or "")


def read(path: Path) -> tuple:
    """(the ModelMetadataT in the file, {associated file name: text}): what a client reads back."""
    from tensorflow.lite.python import schema_py_generated as tflite_schema

    content = Path(path).read_bytes()
    model = tflite_schema.Model.GetRootAsModel(content, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _name(entry.Name()) == METADATA_NAME:
            data = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            schema = internals.tflite_metadata_schema()
            meta = schema.ModelMetadataT.InitFromObj(schema.ModelMetadata.GetRootAsModelMetadata(data, 0))
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                files = {name: archive.read(name).decode("utf-8") for name in archive.namelist()}
            return meta, files
    raise ValueError(f"{path} holds no {METADATA_NAME}")
