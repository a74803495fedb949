"""Models and the files made from them: model sources (torchvision, weights, ONNX files),
random weights, ONNX export, int8 quantisation, static-shape copies, FLOPs, synthetic
images, uploads, and the artifact cache a user can list and prune.

May import ``engine.core`` and ``engine.hardware``.
"""
