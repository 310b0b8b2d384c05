"""How many worker replicas each shared node of a fleet run has, sampled from Serve's status by
the driver while the run goes on: what an autoscaled node did, over time.

Serve's autoscaler decides the counts (qsplit writes no scaling logic); this only reads them,
in a background thread, from ``serve.status()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from qsplit.serve import _ray

PERIOD_S = 0.5
"""Between two samples: finer than the autoscaler's delays (seconds), cheap for the controller."""

Samples = dict[str, tuple[tuple[float, int], ...]]
"""Node → ``(epoch seconds, running worker replicas)`` in time order."""


class ReplicaWatch:
    """Samples the running replicas of each node's worker deployment every ``period_s`` until
    :meth:`stop`. ``deployments``: node → (Serve application, deployment name)."""

    def __init__(
        self, deployments: Mapping[str, tuple[str, str]], period_s: float = PERIOD_S
    ) -> None:
        self._deployments = dict(deployments)
        self._period_s = period_s
        self._samples: dict[str, list[tuple[float, int]]] = {n: [] for n in deployments}
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="qsplit-replica-watch", daemon=True)
        self._thread.start()

    def samples(self) -> Samples:
        """Every sample so far; raises what stopped the sampling, if something did."""
        with self._lock:
            if self._error is not None:
                raise RuntimeError("sampling Serve's status failed") from self._error
            return {n: tuple(s) for n, s in self._samples.items()}

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _loop(self) -> None:
        _, serve = _ray.import_ray()
        try:
            while not self._stopped.is_set():
                self._sample(serve.status())
                self._stopped.wait(self._period_s)
        except Exception as error:  # raised by samples(), in the driver's thread
            with self._lock:
                self._error = error

    def _sample(self, status: Any) -> None:
        now = time.time()
        with self._lock:
            for node, (application, name) in self._deployments.items():
                app = status.applications.get(application)
                deployment = app.deployments.get(name) if app is not None else None
                if deployment is None:  # not deployed yet
                    continue
                running = sum(n for s, n in deployment.replica_states.items() if s == "RUNNING")
                self._samples[node].append((now, running))
