"""Memory of the app under sustained use: does its resident set plateau, or grow without end?

Launches ``spaces/app.py`` as its own process, then runs two phases against it while sampling the
server's RSS (``/proc/<pid>/status``) every few seconds:

* **clients**: N clients, each one browser session, calling ``/analyze`` (an example photo, the
  app's default models) back to back for M minutes;
* **sessions**: S fresh sessions, one upload of a large (2048 px) photo each — the pattern that
  used to leave ≈ 11.5 MB per visitor behind.

Both phases are compared with the plateau of the clients phase (the median RSS of its second
quarter, after warm-up): their peak, their end, and whether the end stays within 10 % of it.

    python benchmarks/soak.py --clients 4 --minutes 5 --sessions 40
    python benchmarks/soak.py --clients 2 --minutes 1 --sessions 10      # a quick look

A benchmark, not a test: figures depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EXAMPLES = REPO / "spaces" / "examples"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_app(port: int, env: dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(REPO / "spaces" / "app.py")], cwd=REPO,
                               env={**os.environ, **env, "GRADIO_SERVER_PORT": str(port)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from gradio_client import Client

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            Client(f"http://127.0.0.1:{port}/", verbose=False)
            return process
        except Exception:
            time.sleep(2)
    process.kill()
    raise RuntimeError("the app did not start within 3 minutes")


class Sampler(threading.Thread):
    """RSS of one process every `every` seconds, with the phase it belongs to."""

    def __init__(self, pid: int, every: float = 3.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.phase = pid, every, "idle"
        self.samples: list[tuple[float, str, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop.is_set():
            self.samples.append((time.monotonic() - start, self.phase, rss_mb(self.pid)))
            self.stop.wait(self.every)


MODELS: list[str] = []  # the app's default models, set in main()
FAILURES: list[str] = []  # requests that raised (e.g. a download cut short), reported with the figures


def analyze(client, photo: Path) -> None:
    from gradio_client import handle_file

    client.predict(handle_file(str(photo)), MODELS, "gradcam", "predicted class", api_name="/analyze")


def clients_phase(url: str, clients: int, minutes: float) -> int:
    from gradio_client import Client

    photos = sorted(EXAMPLES.glob("*.jpg"))
    done = [0] * clients
    deadline = time.monotonic() + 60 * minutes

    def work(index: int) -> None:
        client = Client(url, verbose=False)
        while time.monotonic() < deadline:
            try:
                analyze(client, photos[(index + done[index]) % len(photos)])
            except Exception as error:
                FAILURES.append(f"{type(error).__name__}: {str(error)[:120]}")
            done[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done)


def sessions_phase(url: str, sessions: int, workdir: Path) -> int:
    from gradio_client import Client
    from PIL import Image

    large = workdir / "large.jpg"
    photo = Image.open(EXAMPLES / "grace_hopper.jpg").convert("RGB")
    photo.resize((2048, round(2048 * photo.height / photo.width))).save(large, quality=92)
    for _ in range(sessions):
        analyze(Client(url, verbose=False), large)
    return sessions


def plateau_of(samples: list[tuple[float, str, float]], phase: str) -> float:
    """The median RSS of the phase's second quarter (after warm-up)."""
    values = [rss for _, name, rss in samples if name == phase]
    return statistics.median(values[len(values) // 4: max(len(values) // 2, len(values) // 4 + 1)])


def summary(samples: list[tuple[float, str, float]], phase: str, plateau: float) -> str:
    """The phase's peak and end against `plateau` (the clients phase's, for both phases)."""
    values = [rss for _, name, rss in samples if name == phase]
    if len(values) < 3:
        return f"| {phase} | – | – | – | too few samples |"
    end = statistics.median(values[-3:])
    verdict = "plateau" if end <= 1.10 * plateau else "still growing"
    change = 100 * (end / plateau - 1)
    return f"| {phase} | {plateau:.0f} | {max(values):.0f} | {end:.0f} | {change:+.1f}% ({verdict}) |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--port", type=int, default=7871)
    parser.add_argument("--models", help="FER_APP_MODELS for the app (default: its own defaults)")
    args = parser.parse_args()
    env = {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    if args.models:
        env["FER_APP_MODELS"] = args.models
    from spaces.model_choice import default_models

    os.environ.update(env)
    MODELS[:] = default_models()
    import tempfile

    process = start_app(args.port, env)
    url = f"http://127.0.0.1:{args.port}/"
    sampler = Sampler(process.pid)
    sampler.start()
    try:
        sampler.phase = "clients"
        requests = clients_phase(url, args.clients, args.minutes)
        sampler.phase = "sessions"
        with tempfile.TemporaryDirectory() as workdir:
            sessions = sessions_phase(url, args.sessions, Path(workdir))
        time.sleep(3 * sampler.every)
    finally:
        sampler.stop.set()
        process.terminate()
        process.wait(30)
    load = os.getloadavg()[0]
    print(f"{args.clients} clients × {args.minutes:g} min: {requests} analyses; then {sessions} fresh sessions "
          f"(2048 px photo); load average {load:.1f}\n")
    if FAILURES:
        print(f"{len(FAILURES)} requests failed, first: {FAILURES[0]}\n")
    print("| phase | plateau after warm-up (MB) | peak (MB) | end (MB) | end vs plateau |\n|---|---:|---:|---:|---|")
    plateau = plateau_of(sampler.samples, "clients")
    for phase in ("clients", "sessions"):
        print(summary(sampler.samples, phase, plateau))


if __name__ == "__main__":
    main()
