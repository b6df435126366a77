"""masim: a memory access simulator, both a real workload and an exact model of it.

``masim.config`` parses masim's config format, ``masim.runner`` touches real
memory as a config says (the ``masim`` command), and ``masim.model`` answers
which pages a config accessed when, on a virtual clock, for the user-space
DAMON engine and for ground truth.
"""
