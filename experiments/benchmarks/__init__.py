"""Helpers of :mod:`experiments.benchmark`: timers, the machine's matmul rate, FLOP counts
(by hand for MLPs, from XLA's cost analysis for any jitted function) and synthetic data in
:mod:`~experiments.benchmarks.timing`; the training benches (one train step, a scanned epoch
against a Python loop, vmapped seeds, convolution implementations) in
:mod:`~experiments.benchmarks.training`; the analysis benches (Hessian-vector products, Lanczos,
2-D loss surfaces) in :mod:`~experiments.benchmarks.analysis`. Each bench returns seconds; the
experiment turns them into rows and claims.
"""
