"""A small workload with something to look at afterwards: tasks, an actor, a failure."""

import time

import ray

ray.init()


@ray.remote
def square(x: int) -> int:
    time.sleep(0.05)
    return x * x


@ray.remote
def fails() -> None:
    raise ValueError("this task fails on purpose")


@ray.remote
class Counter:
    def __init__(self) -> None:
        self.value = 0

    def add(self, n: int) -> int:
        self.value += n
        return self.value


print("sum of squares:", sum(ray.get([square.remote(i) for i in range(200)])))
counter = Counter.remote()
print("counter:", ray.get([counter.add.remote(i) for i in range(10)])[-1])
try:
    ray.get(fails.remote())
except ray.exceptions.RayTaskError as error:
    print("failed as expected:", type(error.cause).__name__)
