"""Placeholder until the perf_script format lands."""
from damo.errors import DamoError


def sniff(head: bytes, fmt: str) -> bool:
    return False


def read(path, fmt):
    raise DamoError("perf_script is not supported yet")


class Writer:
    def __init__(self, path, meta, fmt):
        raise DamoError("perf_script is not supported yet")
