"""Helpers for the executable course "PyTorch and resource accounting" (CS336, Lecture 2).

One module per notebook (napkin, tensors, dtypes, flops, gradients, models, optimizers, training,
mixed_precision, transformer, profiling, distributed) plus shared ones (device, hardware, display,
exercises). The course's own tooling (student copies, slides, site, benchmarks) is `course_tools`.
"""
