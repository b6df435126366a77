"""The ``sim`` record source: the user-space DAMON engine monitoring the masim access model.

Everything runs on a virtual clock that starts at 0 when the config's first phase starts,
so nothing sleeps and a record of a 70 s config takes about a second. The record is a pure
function of the config, the monitoring attributes and ``--seed``: the snapshot times are
virtual, the metadata's ``start_time`` is that clock's epoch (0.0), and the native writer's
chunking follows the virtual clock too, so the same inputs give byte-identical files.
"""
from __future__ import annotations

from typing import Iterator

from damo.engine.sim_ops import sim_context
from damo.errors import DamoError
from damo.model import Record, RecordBuilder, RecordMeta
from damo.recording import RecordRequest, base_meta, finish, open_sink

SIM_START_TIME = 0.0      # the virtual clock's epoch, recorded instead of the wall clock
VIRTUAL_SECONDS_PER_TIMER_SECOND = 15


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


def record_duration_ns(model, timeout: float | None) -> int:
    """The config's duration, or ``--timeout`` seconds of virtual time if that is shorter."""
    if timeout is None:
        return model.duration_ns
    return min(model.duration_ns, int(timeout * 1e9))


def sim_meta(request: RecordRequest, model) -> RecordMeta:
    meta = base_meta(request, "sim", request.target[0])
    meta.start_time = SIM_START_TIME
    meta.extra = {"seed": request.seed, "clock": "virtual", "ops": "sim",
                  "masim_access_rate": model.access_rate}
    return meta


def snapshots(model, request: RecordRequest, ctx=None) -> Iterator[tuple]:
    """Run the engine over ``model``: ``(target_id, start_ns, end_ns, start, end, nr_accesses, age)``."""
    ctx = ctx or sim_context(model, request.attrs, request.seed)
    for agg in ctx.run(record_duration_ns(model, request.timeout)):
        for snap in agg.targets:
            yield snap.target_id, agg.start_ns, agg.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age


def simulate(request: RecordRequest, model=None) -> tuple[Record, object]:
    """The record ``damo record`` would write for ``request``, in memory, and its model."""
    model = model or load_model(request.target[0], request.seed)
    builder = RecordBuilder(sim_meta(request, model))
    for snap in snapshots(model, request):
        builder.add(*snap)
    return builder.build(), model


def record(request: RecordRequest) -> int:
    """Record ``request.target`` (one masim config) into ``request.out``."""
    if len(request.target) != 1:
        raise DamoError("record: the simulator takes one masim config file as its TARGET")
    model = load_model(request.target[0], request.seed)
    ctx = sim_context(model, request.attrs, request.seed)
    sink = open_sink(request, sim_meta(request, model), total_ns=record_duration_ns(model, request.timeout),
                     clock="virtual")
    if hasattr(sink.writer, "set_clock"):
        # The writer's flush timer on the virtual clock, slowed down: at ~100x real time a
        # chunk per 2 virtual seconds would cost more in compressor start-ups than it saves.
        sink.writer.set_clock(lambda: ctx.now_ns / 1e9 / VIRTUAL_SECONDS_PER_TIMER_SECOND)
    interrupted = False
    try:
        for snap in snapshots(model, request, ctx):
            sink.append(*snap)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        finish(sink, request, interrupted)
    return 0
