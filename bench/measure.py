"""Small measuring tools shared by the bench workers: stage timers, peak memory, folder sizes, percentiles, a web load."""

from __future__ import annotations

import functools
import os
import time
from collections import defaultdict
from pathlib import Path


class Stages:
    """Seconds spent inside chosen functions, by label, found by wrapping them in place.

    >>> stages = Stages(); stages.wrap(Chunker, "split", "split"); ...; stages.seconds["split"]
    Nested labels (pysbd inside split) are both counted; the table shows them indented.
    """

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner: object, name: str, label: str) -> None:
        """Replace `owner.name` (a class's method, or a module's function) by a timed copy, for this process."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        setattr(owner, name, timed)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def report(self, per: int = 1) -> dict[str, float]:
        """Seconds (or, with `per`, milliseconds per item) by label."""
        if per == 1:
            return {k: round(v, 3) for k, v in self.seconds.items()}
        return {k: round(1000 * v / per, 3) for k, v in self.seconds.items()}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def folder_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6, 2)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def ask_load(urls: list[str], users: int, seconds: float, questions: list[dict], timeout: float) -> dict:
    """`users` gradio_client users, user i on urls[i % len(urls)] with a client of its own, each asking /ask one
    question after another until `seconds` are up: the answers' latencies, the errors, and this process's CPU."""
    import threading

    from gradio_client import Client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    # subtle: gradio_client opens a new httpx client per request, and with ssl_verify it loads the CA bundle
    # each time (35% of the load generator's CPU, py-spy) even for plain http; on loopback there is nothing to verify
    clients = [Client(urls[i % len(urls)], verbose=False, ssl_verify=False) for i in range(users)]
    ready = threading.Barrier(users + 1)
    deadline = [0.0]

    def user(i: int) -> None:
        k = i
        ready.wait()
        while time.perf_counter() < deadline[0]:
            q = questions[k % len(questions)]
            k += users
            t = time.perf_counter()
            try:
                clients[i].submit(q["q"], q.get("history", []), api_name="/ask").result(timeout=timeout)
                with lock:
                    latencies.append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 - a load test counts every kind of failure
                with lock:
                    errors.append(f"{type(e).__name__}: {e}"[:200])

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
    for th in threads:
        th.start()
    start = time.perf_counter()
    deadline[0] = start + seconds
    cpu = os.times()
    ready.wait()
    for th in threads:
        th.join(timeout=seconds + timeout + 30)
    elapsed = time.perf_counter() - start
    used = os.times()
    return {"latencies": latencies, "errors": errors, "seconds": elapsed,
            "cpu_seconds": used.user + used.system - cpu.user - cpu.system}
