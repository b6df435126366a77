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
from damo.model import TARGETS_KEY, Record, RecordBuilder, RecordMeta
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


def models_of(model) -> list:
    """One model, or several (one per target), as a list."""
    return list(model) if isinstance(model, (list, tuple)) else [model]


def record_duration_ns(model, timeout: float | None) -> int:
    """The (longest) config's duration, or ``--timeout`` seconds of virtual time if that is shorter."""
    duration = max(m.duration_ns for m in models_of(model))
    if timeout is None:
        return duration
    return min(duration, int(timeout * 1e9))


MAX_SNAPSHOTS = 10_000_000          # aggregations one simulated record may take
MAX_SAMPLES = 1_000_000_000         # sampling intervals one simulated record may take


def check_work(model, request: RecordRequest) -> None:
    """Refuse -s/-a values that would simulate without end (``-s 1 -a 1`` on a 70 s config)."""
    duration_us = record_duration_ns(model, request.timeout) / 1000
    snapshots = duration_us / request.attrs.aggr_us
    samples = duration_us / request.attrs.sample_us
    if snapshots > MAX_SNAPSHOTS or samples > MAX_SAMPLES:
        raise DamoError(f"record: -s {request.attrs.sample_us} -a {request.attrs.aggr_us} over {duration_us / 1e6:g} s "
                        f"would simulate {snapshots:.3g} aggregations and {samples:.3g} samples; the simulator takes "
                        f"at most {MAX_SNAPSHOTS:.0e} and {MAX_SAMPLES:.0e} (raise -s/-a or give --timeout)")


def sim_meta(request: RecordRequest, model) -> RecordMeta:
    models = models_of(model)
    meta = base_meta(request, "sim", " ".join(request.target) if len(models) > 1 else request.target[0])
    meta.start_time = SIM_START_TIME
    meta.extra = {"seed": request.seed, "clock": "virtual", "ops": "sim",
                  "masim_access_rate": models[0].access_rate}
    if len(models) > 1:
        meta.extra[TARGETS_KEY] = [{"target_id": k, "config": path, "masim_access_rate": m.access_rate}
                                   for k, (path, m) in enumerate(zip(request.target, models))]
    return meta


def snapshots(model, request: RecordRequest, ctx=None) -> Iterator[tuple]:
    """Run the engine over ``model`` (or several, one target each, a target leaving when its
    config ends, as an exiting process does): ``(target_id, start_ns, end_ns, start, end,
    nr_accesses, age)``."""
    ctx = ctx or sim_context(model, request.attrs, request.seed)
    several = len(models_of(model)) > 1
    for agg in ctx.run(record_duration_ns(model, request.timeout)):
        for snap in agg.targets:
            yield snap.target_id, agg.start_ns, agg.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age
        if several:
            for target in [t for t in ctx.targets if t.handle.duration_ns <= agg.end_ns]:
                ctx.remove_target(target)


def load_models(request: RecordRequest):
    """The model of each masim config of TARGET: one model, or a list of several."""
    models = [load_model(path, request.seed) for path in request.target]
    return models if len(models) > 1 else models[0]


def simulate(request: RecordRequest, model=None) -> tuple[Record, object]:
    """The record ``damo record`` would write for ``request``, in memory, and its model(s)."""
    model = model or load_models(request)
    builder = RecordBuilder(sim_meta(request, model))
    for snap in snapshots(model, request):
        builder.add(*snap)
    return builder.build(), model


def record(request: RecordRequest) -> int:
    """Record ``request.target`` (masim configs, one target each) into ``request.out``."""
    if request.snapshot is not None:
        raise DamoError("--snapshot reads a kernel kdamond's tried regions; the simulator records every "
                        "aggregation (use --timeout to shorten it)")
    model = load_models(request)
    check_work(model, request)
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
    return 130 if interrupted else 0
