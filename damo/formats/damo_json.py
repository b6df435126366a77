"""Placeholder until the damo_json format lands."""
from damo.errors import DamoError


def sniff(head: bytes, fmt: str) -> bool:
    return False


def read(path, fmt):
    raise DamoError("damo_json is not supported yet")


class Writer:
    def __init__(self, path, meta, fmt):
        raise DamoError("damo_json is not supported yet")
