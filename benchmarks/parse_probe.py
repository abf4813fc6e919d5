"""
P4 probe: parse one DAG file the way Airflow 3.3's DAG processor does, and time it.

Run in a fresh interpreter per measurement (``benchmarks/run.py`` starts it with the deployment's
environment: same AIRFLOW_HOME and configuration)::

    python benchmarks/parse_probe.py FILE BUNDLE_PATH RESULT_JSON

What a real DAG processor has loaded before it parses a file is loaded first, untimed: Airflow,
``airflow.sdk``, ``airflow.models``, the processor module itself (the manager imports it), and the
``airflow.*`` modules that the file imports (the manager pre-imports them before it forks the
parsing child, ``[dag_processor] parsing_pre_import_modules``); then, as the manager does before it
forks (``DagFileProcessorManager.before_run``), the garbage collector's heap is frozen, so that a
full collection over Airflow's 200 000 objects (about 90 ms here) does not land at random in the
timed part. Then only what the parsing child
does is timed: ``airflow.dag_processing.processor._parse_file`` (the DAG-file stability check, a
``BundleDagBag`` of the file, the serialization of its DAGs). The ``BundleDagBag`` construction
(executing the file), the stability check and the serialization are timed on their own as well.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time


def main(path: str, bundle_path: str, result_path: str) -> int:
    started = time.perf_counter()
    import airflow  # noqa: F401
    import airflow.models  # noqa: F401
    import airflow.sdk  # noqa: F401
    import structlog
    from airflow.dag_processing import processor

    log = structlog.get_logger(logger_name="parse_probe")
    processor._pre_import_airflow_modules(path, log)
    gc.freeze()
    preload_s = time.perf_counter() - started

    bag_times: list[float] = []
    real_bag = processor.BundleDagBag

    class TimedBundleDagBag(real_bag):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                super().__init__(*args, **kwargs)
            finally:
                bag_times.append(time.perf_counter() - t0)

    processor.BundleDagBag = TimedBundleDagBag

    # The other two parts of _parse_file, timed apart as well (same functions, wrapped).
    part_times: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                part_times[name] = part_times.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    processor.check_dag_file_stability = timed("stability_check_s", processor.check_dag_file_stability)
    processor._serialize_dags = timed("serialize_s", processor._serialize_dags)
    # What the parsing child sets first (processor._parse_file_entrypoint).
    os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "client"
    request = processor.DagFileParseRequest(
        file=path, bundle_path=bundle_path, bundle_name="dags-folder", callback_requests=[]
    )
    t0 = time.perf_counter()
    result = processor._parse_file(request, log)
    parse_file_s = time.perf_counter() - t0

    dags = [d.dag_id for d in (result.serialized_dags if result else [])]
    errors = dict(result.import_errors or {}) if result else {"?": "no result"}
    with open(result_path, "w") as fh:
        json.dump(
            {
                "file": path,
                "parse_file_s": parse_file_s,
                "dagbag_s": bag_times[0] if bag_times else None,
                **part_times,
                "preload_s": preload_s,
                "dags": dags,
                "import_errors": {str(k): str(v)[-2000:] for k, v in errors.items()},
                "modules_loaded": len(sys.modules),
            },
            fh,
        )
    return 0 if dags and not errors else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
