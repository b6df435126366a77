"""The ``sim`` record source: the user-space DAMON engine monitoring the masim access model.

Everything runs on a virtual clock that starts at 0 when the config's first phase starts,
so nothing sleeps and a record of a 70 s config takes about a second. The record is a pure
function of the config, the monitoring attributes and ``--seed``: the snapshot times are
virtual, the metadata's ``start_time`` is that clock's epoch (0.0), and the native writer's
chunking follows the virtual clock too, so the same inputs give byte-identical files.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from damo.engine.core import IntervalsGoal
from damo.engine.sim_ops import sim_context
from damo.errors import DamoError
from damo.model import STATM_FIELDS, TARGETS_KEY, MemFootprints, Record, RecordBuilder, RecordMeta
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
    meta.extra.update({"seed": request.seed, "clock": "virtual", "ops": "sim",
                       "masim_access_rate": models[0].access_rate})
    if len(models) > 1:
        meta.extra[TARGETS_KEY] = [{"target_id": k, "config": path, "masim_access_rate": m.access_rate}
                                   for k, (path, m) in enumerate(zip(request.target, models))]
    return meta


SIM_PID = 0                 # simulated processes have no pid; their footprint rows carry this plus the target id
FOOTPRINT_PERIOD_NS = 1_000_000_000     # damo samples footprints once a second


def intervals_goal(request: RecordRequest) -> IntervalsGoal | None:
    return IntervalsGoal(*request.intervals_goal) if request.intervals_goal else None


def make_context(model, request: RecordRequest):
    """The engine context of ``request``; bad attributes or goal are one DamoError."""
    try:
        return sim_context(model, request.attrs, request.seed, goal=intervals_goal(request))
    except ValueError as err:
        raise DamoError(f"record: {err}") from None


def snapshots(model, request: RecordRequest, ctx=None) -> Iterator[tuple]:
    """Run the engine over ``model`` (or several, one target each, a target leaving when its
    config ends, as an exiting process does): ``(target_id, start_ns, end_ns, start, end,
    nr_accesses, age, sample_us)``; ``sample_us`` is the snapshot's own sampling interval when
    tuned, else None."""
    ctx = ctx or make_context(model, request)
    tuned = request.intervals_goal is not None
    several = len(models_of(model)) > 1
    for agg in ctx.run(record_duration_ns(model, request.timeout)):
        sample_us = agg.sample_us if tuned else None
        for snap in agg.targets:
            yield (snap.target_id, agg.start_ns, agg.end_ns, snap.start, snap.end, snap.nr_accesses, snap.age,
                   sample_us)
        if several:
            for target in [t for t in ctx.targets if t.handle.duration_ns <= agg.end_ns]:
                ctx.remove_target(target)


def load_models(request: RecordRequest):
    """The model of each masim config of TARGET: one model, or a list of several."""
    models = [load_model(path, request.seed) for path in request.target]
    return models if len(models) > 1 else models[0]


def footprint_entry(model, t_ns: int) -> dict:
    """damo's ``.mem_footprint`` sample of the simulated process at virtual time ``t_ns``: mapped
    and resident pages from the model (no system entry: there is no simulated system)."""
    rows = []
    for target_id, m in enumerate(models_of(model)):
        if len(models_of(model)) > 1 and t_ns > m.duration_ns:
            continue            # that simulated process has exited
        statm = dict.fromkeys(STATM_FIELDS, 0)
        statm["size"] = m.mapped_bytes // 4096
        statm["resident"] = m.resident_bytes(t_ns) // 4096
        rows.append({"pid": SIM_PID + target_id, "footprint": statm})
    return {"time": SIM_START_TIME + t_ns / 1e9, "footprints": rows}


def footprint_times(duration_ns: int) -> range:
    """Virtual times of the footprint samples: every second from 0 through the end."""
    return range(0, duration_ns + 1, FOOTPRINT_PERIOD_NS)


def footprint_entries(model, request: RecordRequest) -> list[dict]:
    if "mem_footprint" not in request.do_record:
        return []
    return [footprint_entry(model, t) for t in footprint_times(record_duration_ns(model, request.timeout))]


def simulate(request: RecordRequest, model=None) -> tuple[Record, object]:
    """The record ``damo record`` would write for ``request``, in memory, and its model(s)."""
    model = model or load_models(request)
    builder = RecordBuilder(sim_meta(request, model))
    sample_us = []
    for snap in snapshots(model, request):
        builder.add(*snap[:7])
        sample_us.append(snap[7])
    record = builder.build()
    if request.intervals_goal is not None:
        record.snapshot_sample_us = np.array(sample_us, dtype=np.int64)
    entries = footprint_entries(model, request)
    if entries:
        record.footprints = MemFootprints.from_damo(entries)
    return record, model


def record(request: RecordRequest) -> int:
    """Record ``request.target`` (masim configs, one target each) into ``request.out``."""
    if request.snapshot is not None:
        raise DamoError("--snapshot reads a kernel kdamond's tried regions; the simulator records every "
                        "aggregation (use --timeout to shorten it)")
    model = load_models(request)
    check_work(model, request)
    ctx = make_context(model, request)
    sink = open_sink(request, sim_meta(request, model), total_ns=record_duration_ns(model, request.timeout),
                     clock="virtual")
    if hasattr(sink.writer, "set_clock"):
        # The writer's flush timer on the virtual clock, slowed down: at ~100x real time a
        # chunk per 2 virtual seconds would cost more in compressor start-ups than it saves.
        sink.writer.set_clock(lambda: ctx.now_ns / 1e9 / VIRTUAL_SECONDS_PER_TIMER_SECOND)
    interrupted = False
    footprint_due = iter(footprint_times(record_duration_ns(model, request.timeout))
                         if "mem_footprint" in request.do_record else ())
    next_footprint = next(footprint_due, None)
    try:
        for snap in snapshots(model, request, ctx):
            # The footprint samples up to this snapshot's end, in time order with the snapshots.
            while next_footprint is not None and next_footprint <= snap[2]:
                sink.append_side("mem_footprint", footprint_entry(model, next_footprint))
                next_footprint = next(footprint_due, None)
            sink.append(*snap)
        while next_footprint is not None:
            sink.append_side("mem_footprint", footprint_entry(model, next_footprint))
            next_footprint = next(footprint_due, None)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        finish(sink, request, interrupted)
    return 130 if interrupted else 0
