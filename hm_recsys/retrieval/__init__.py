"""Retrieval stage: ResNet50 image embeddings, tower features + TFRecords, TFRS two-tower, exact top-k.

Modules that need TensorFlow get it through ``tf_env.tensorflow()`` (legacy Keras, torch first);
importing this package itself loads neither torch nor TensorFlow.
"""
