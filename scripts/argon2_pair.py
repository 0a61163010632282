#!/usr/bin/env python3
"""How much two concurrent argon2id runs slow each other on this machine, outside slugbase.

Same parameters as slugbase (m = 19 MiB, t = 2, p = 1), libargon2 through argon2-cffi:
one process alone, then two at once, 4 s each, twice. Used by BENCHMARKS.md to explain the
login target (cores x one core's rate) on machines where two runs share a cache.

    pip install argon2-cffi && python3 scripts/argon2_pair.py
"""
import time
from multiprocessing import Process, Queue

from argon2.low_level import Type, hash_secret_raw


def run(q, secs):
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < secs:
        hash_secret_raw(b"password", b"saltsaltsaltsalt", time_cost=2, memory_cost=19456,
                        parallelism=1, hash_len=32, type=Type.ID)
        n += 1
    q.put(n / (time.perf_counter() - t))


if __name__ == "__main__":
    for procs in (1, 2, 1, 2):
        q = Queue()
        ps = [Process(target=run, args=(q, 4)) for _ in range(procs)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        r = [q.get() for _ in ps]
        print(f"{procs} process(es): per process {sum(r) / len(r):.1f}/s, total {sum(r):.1f}/s")
