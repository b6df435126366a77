"""The ``sim`` record source: the user-space DAMON engine monitoring the masim access model.

Everything runs on a virtual clock that starts at 0 when the config's first phase starts,
so nothing sleeps and a record of a 70 s config takes about a second. The record is a pure
function of the config, the monitoring attributes and ``--seed``: the snapshot times are
virtual, the metadata's ``start_time`` is that clock's epoch (0.0), and the native writer's
chunking follows the virtual clock too, so the same inputs give byte-identical files.
"""
from __future__ import annotations

from damo.engine.sim_ops import sim_context
from damo.errors import DamoError
from damo.record import RecordRequest, base_meta, finish, open_sink

SIM_START_TIME = 0.0      # the virtual clock's epoch, recorded instead of the wall clock


def load_model(path: str, seed: int):
    """Parse a masim config and build its access model (the layout depends on ``seed``)."""
    try:
        from masim.config import load_config     # ConfigError (a DamoError) names FILE:LINE
        from masim.model import AccessModel
    except ImportError as err:
        raise DamoError(f"the masim access model is not available ({err})") from None

    config = load_config(path)
    try:
        return AccessModel(config, seed=seed)
    except ValueError as err:
        raise DamoError(f"{path}: {err}") from None


def record(request: RecordRequest) -> int:
    """Record ``request.target`` (one masim config) into ``request.out``."""
    if len(request.target) != 1:
        raise DamoError("record: the simulator takes one masim config file as its TARGET")
    path = request.target[0]
    model = load_model(path, request.seed)
    duration_ns = model.duration_ns
    if request.timeout is not None:
        duration_ns = min(duration_ns, int(request.timeout * 1e9))
    ctx = sim_context(model, request.attrs, request.seed)

    meta = base_meta(request, "sim", path)
    meta.start_time = SIM_START_TIME
    meta.extra = {"seed": request.seed, "clock": "virtual", "ops": "sim",
                  "masim_access_rate": model.access_rate}
    sink = open_sink(request, meta, total_ns=duration_ns, clock="virtual")
    if hasattr(sink.writer, "clock"):
        sink.writer.clock = lambda: ctx.now_ns / 1e9
    interrupted = False
    try:
        for agg in ctx.run(duration_ns):
            for snap in agg.targets:
                sink.append(snap.target_id, agg.start_ns, agg.end_ns, snap.start, snap.end,
                            snap.nr_accesses, snap.age)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        finish(sink, request, interrupted)
    return 0
