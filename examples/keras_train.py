"""A plain Keras 3 training script with no greenprof code in it.

Profile it with no change:  greenprof run -- python examples/keras_train.py
Random data, a tiny model: a few seconds, nothing downloaded.
"""

import argparse

import keras
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(640, 20)).astype("float32")
    y = rng.integers(0, 4, size=(640,))
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4)]
    )
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    for epoch, loss in enumerate(history.history["loss"]):
        print(f"epoch {epoch}: loss {loss:.4f}")


if __name__ == "__main__":
    main()
