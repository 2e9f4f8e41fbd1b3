"""``greenprof bench``: the same workloads trained in each framework variant, measured.

Nothing here is imported by ``import greenprof``; frameworks are imported only inside
the worker process (:mod:`greenprof.bench.worker`) of the variant that needs them.
See docs/bench.md for what is measured and the protocol.
"""
