"""Models that ship inside the package, loaded by name, offline.

Each one is ``<name>.pt`` (a weights-only checkpoint of ours: config, float16 weights, and a ``pretrained``
record of its training) with a model card ``<name>.md`` beside it. ``load_model``, ``Vocoder.from_checkpoint``
and ``infer.py --checkpoint`` accept a name wherever they accept a path.
"""
