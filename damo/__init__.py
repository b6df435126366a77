"""damo: a fast data access profiler for Linux, speaking the DAMON user-space tool's language."""

__version__ = "0.1.0"
