"""The one place that loads torch and TensorFlow, in the order and with the settings they need.

Why: TFRS 0.7.7 only works with legacy Keras (``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow
is first imported), and importing TensorFlow before torchvision segfaults the interpreter (both ship
LLVM). Every retrieval module asks this module for ``torch`` / ``tf`` / ``tfrs`` instead of importing them.
"""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType

log = logging.getLogger(__name__)

_TF_CONFIGURED = False


def _set_env() -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def torch() -> ModuleType:
    """``torch`` with torchvision loaded, imported before TensorFlow can be."""
    _set_env()
    if "tensorflow" in sys.modules and "torchvision" not in sys.modules:
        raise RuntimeError(
            "tensorflow was imported before torch/torchvision in this process, which crashes the "
            "interpreter (both ship LLVM); import hm_recsys.retrieval.tf_env before tensorflow"
        )
    import torch as _torch
    import torchvision  # noqa: F401  (must precede tensorflow)

    return _torch


def tensorflow() -> tuple[ModuleType, ModuleType]:
    """``(tf, tfrs)`` on legacy Keras 2; GPUs (when present) get memory growth so torch can share the card."""
    global _TF_CONFIGURED
    torch()
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    if not tf.keras.layers.Dense.__module__.startswith("tf_keras"):
        raise RuntimeError(
            "tensorflow was imported with Keras 3 before TF_USE_LEGACY_KERAS=1 was set; TFRS needs "
            "tf-keras: import hm_recsys.retrieval.tf_env before anything imports tensorflow"
        )
    if not _TF_CONFIGURED:
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:  # already initialised by an earlier caller: keep its setting
                pass
        _TF_CONFIGURED = True
    return tf, tfrs


def torch_device(device: str | None = None):
    """``device`` when given, else CUDA when torch sees a card, else CPU."""
    t = torch()
    if device is not None:
        return t.device(device)
    return t.device("cuda" if t.cuda.is_available() else "cpu")


def tf_device() -> str:
    """The TensorFlow device that training runs on (``/GPU:0`` when one is visible)."""
    tf, _ = tensorflow()
    return "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"
