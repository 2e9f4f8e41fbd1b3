"""Sensor polling, in a helper process where it can run, on threads where it cannot.

- ``threads``: :class:`~greenprof.sampling.threads.ThreadSampler`, polling on daemon
  threads with reader threads, wedge timeouts and the reading guard (the engine of both
  paths).
- ``helper``: the helper process's program (``python -m greenprof.sampling``) and the
  messages it exchanges with the training process.
- ``remote``: the training process's end of it (start, take, stop, reap).
- ``frames``: pickled frames on a pipe.
- ``health``: :class:`~greenprof.sampling.health.DeviceHealth`, the callbacks' types, the bounds.
- ``closing``: :func:`~greenprof.sampling.closing.close_sensors`, bounded.
- ``gaps``: poll gaps and measured update periods, from the readings (pure).

:mod:`greenprof.sampler` puts them together; nothing here is imported by ``import
greenprof`` until a profiler starts.
"""
