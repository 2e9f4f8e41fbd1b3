"""The directory ``greenprof run`` puts first on the child's PYTHONPATH (its
``sitecustomize`` starts zero-code profiling); a package only so that it ships."""
