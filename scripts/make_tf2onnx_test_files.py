"""Write the channels-last (NHWC) ONNX files under tests/data/onnx/ as TensorFlow users make them.

Keras models take images channels last, and tf2onnx keeps that layout unless told otherwise
(``--inputs-as-nchw``): the file's input is ``[batch, height, width, channels]``, its first
node a Transpose. Each file here is a tiny Keras classifier (a few KB of weights: a strided
convolution, batch norm, ReLU, global pooling and a dense softmax head) converted by tf2onnx
with its defaults: one with any height and width, one fixed at 32×40, one grey (one channel)
at 28 px, and one that takes uint8 pixels and rescales them itself (a Keras ``Rescaling``
layer, as Keras applications built with ``include_preprocessing`` do).

TensorFlow is not a dependency of this project, so this script runs in a virtual environment
of its own (the versions the committed files were written with)::

    TF=$(mktemp -d)/venv && python3 -m venv "$TF"
    "$TF"/bin/pip install tensorflow-cpu==2.15.1 tf2onnx==1.16.1 onnx==1.16.2
    "$TF"/bin/python scripts/make_tf2onnx_test_files.py
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tf2onnx

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "onnx"
OPSET = 13  # tf2onnx 1.16's default is 15; 13 is what its README's examples pin


def keras_classifier(height: int | None, width: int | None, channels: int) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input(shape=(height, width, channels), name="input_1")
    x = tf.keras.layers.Conv2D(8, 3, strides=2, use_bias=False)(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    model = tf.keras.Model(inputs, outputs)
    # Batch-norm statistics other than 0 and 1, as a trained network's are.
    bn = model.layers[2]
    rng = tf.random.Generator.from_seed(1)
    bn.moving_mean.assign(rng.normal([8], stddev=0.1))
    bn.moving_variance.assign(1.0 + tf.abs(rng.normal([8], stddev=0.2)))
    return model


def with_pixels(model: tf.keras.Model) -> tf.keras.Model:
    """``model`` behind a uint8 input it rescales itself to -1..1."""
    pixels = tf.keras.Input(shape=model.input_shape[1:], dtype="uint8", name="input_1")
    floats = tf.keras.layers.Rescaling(1 / 127.5, offset=-1)(tf.cast(pixels, tf.float32))
    return tf.keras.Model(pixels, model(floats))


def convert(
    name: str, height: int | None, width: int | None, channels: int, pixels: bool = False
) -> None:
    model = keras_classifier(height, width, channels)
    dtype = tf.float32
    if pixels:
        model, dtype = with_pixels(model), tf.uint8
    spec = (tf.TensorSpec((None, height, width, channels), dtype, name="input_1"),)
    path = OUT / name
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, output_path=str(path))
    print(f"wrote {path.name} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    convert("tf2onnx_nhwc_dynamic_hw.onnx", None, None, 3)
    convert("tf2onnx_nhwc_32x40.onnx", 32, 40, 3)
    convert("tf2onnx_nhwc_gray_28.onnx", 28, 28, 1)
    convert("tf2onnx_nhwc_uint8_32.onnx", 32, 32, 3, pixels=True)
