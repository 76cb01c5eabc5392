"""A smaller scenario A (tests/fixtures/ray-2.60-scenario-a/workload/workload_a.py) for
the end-to-end test: run as a driver outside Ray, `python scenario_e2e.py GCS_ADDRESS`.

50 tasks, half of them on each node (some print to stdout and stderr), a task that fails
every attempt of its retries, nested tasks, a named detached actor called a few times and
then killed, an actor that crashes, is restarted once and crashes again, and a placement
group with one bundle on each node.
"""

import os
import sys
import time

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)


@ray.remote
def square(x: int) -> int:
    if x % 10 == 0:
        print(f"square working on {x}")
        print(f"square warning on {x}", file=sys.stderr)
    time.sleep(0.01)
    return x * x


@ray.remote(max_retries=2, retry_exceptions=True)
def flaky(x: int) -> None:
    raise ValueError(f"flaky failure for {x}")


@ray.remote
def parent(n: int) -> int:
    return sum(ray.get([square.remote(i) for i in range(n)]))


@ray.remote(max_restarts=1, max_task_retries=0)
class Counter:
    def __init__(self, start: int = 0) -> None:
        self.n = start
        print(f"Counter started at {start}")

    def inc(self, k: int = 1) -> int:
        self.n += k
        return self.n

    def crash(self) -> None:
        os._exit(1)


def main() -> None:
    ray.init(address=sys.argv[1])
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    assert len(nodes) == 2, nodes
    on_node = [NodeAffinitySchedulingStrategy(node, soft=False) for node in nodes]
    squares = [square.options(scheduling_strategy=on_node[i % 2]).remote(i) for i in range(50)]
    print("squares:", sum(ray.get(squares)))
    try:
        ray.get(flaky.remote(7))
    except ValueError as e:
        print("flaky failed:", type(e).__name__)
    print("nested:", ray.get([parent.remote(3) for _ in range(2)]))

    counter = Counter.options(name="counter", lifetime="detached", namespace="e2e").remote(10)
    print("counter:", ray.get([counter.inc.remote() for _ in range(5)])[-1])

    crashing = Counter.remote(0)
    ray.get(crashing.inc.remote())
    for attempt in ("crash", "crash again"):
        try:
            ray.get(crashing.crash.remote())
        except ray.exceptions.RayActorError as e:
            print(f"{attempt}:", type(e).__name__)
        if attempt == "crash":
            deadline = time.monotonic() + 60
            while True:  # the restart takes a moment
                try:
                    print("restarted counter:", ray.get(crashing.inc.remote()))
                    break
                except ray.exceptions.RayActorError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)

    group = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    ray.get(group.ready(), timeout=60)
    strategy = PlacementGroupSchedulingStrategy(group)
    print("pg task:", ray.get(square.options(scheduling_strategy=strategy).remote(9)))
    remove_placement_group(group)

    ray.kill(counter)
    print("done")


if __name__ == "__main__":
    main()
