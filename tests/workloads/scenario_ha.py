"""The workload of the head-restart test (tests/test_ha.py), run as a driver outside Ray:
`python scenario_ha.py GCS_ADDRESS before|after`.

before: 10 `square` tasks on each node, and a named detached actor on the worker node
(pinned there, so that losing the head does not take it along), called once.
after (the head has been replaced): the same actor, looked up by name and called again
(its count goes on: the same process), and 10 `square` tasks on each live node.
"""

import sys

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

HEAD_RESOURCE = "node:__internal_head__"


@ray.remote
def square(x: int) -> int:
    return x * x


@ray.remote(num_cpus=0)
class Keeper:
    def __init__(self) -> None:
        self.calls = 0

    def call(self) -> int:
        self.calls += 1
        return self.calls


def on_each_node(nodes: list[str], start: int) -> list[int]:
    """10 squares on each node, each pinned there."""
    refs = [
        square.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
            start + i
        )
        for node in nodes
        for i in range(10)
    ]
    return ray.get(refs)


def main() -> None:
    ray.init(address=sys.argv[1], namespace="ha")
    alive = [n for n in ray.nodes() if n["Alive"]]
    assert len(alive) == 2, alive
    nodes = sorted(n["NodeID"] for n in alive)
    if sys.argv[2] == "before":
        on_each_node(nodes, 0)
        worker = next(n["NodeID"] for n in alive if HEAD_RESOURCE not in n["Resources"])
        keeper = Keeper.options(
            name="keeper",
            lifetime="detached",
            scheduling_strategy=NodeAffinitySchedulingStrategy(worker, soft=False),
        ).remote()
        assert ray.get(keeper.call.remote()) == 1
    else:
        keeper = ray.get_actor("keeper")
        assert ray.get(keeper.call.remote()) == 2  # the same actor process, not a new one
        on_each_node(nodes, 100)
    print("done", flush=True)


if __name__ == "__main__":
    main()
