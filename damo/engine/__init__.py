"""A user-space DAMON: the kernel's monitoring core re-implemented over numpy columns.

``core`` holds the monitoring context and the region algorithms (sampling, merge, split,
aging, region set updates); ``ops`` the operations-set interface that supplies address
spaces and access checks; ``sim_ops`` the operations set over the masim access model.
"""
