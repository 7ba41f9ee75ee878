"""graphgen's benchmark suite: value_and_grad of four workloads, every implementation.

    python -m benchmarks                 # everything; prints the tables, writes results/latest.md
    python -m benchmarks --quick         # a smoke run (a few calls per case)
    python -m benchmarks --workload mlp --impl numpy,graphgen --dtype float32

Modules: `workloads` (shapes, parameters, inputs), one `impl_*` module per implementation
(hand-written NumPy, graphgen, PyTorch, JAX, HIPS autograd), `check` (agreement with the
hand-written NumPy), `measure` (timing, page faults, memory), `worker` (one case in its own
process), `compile_time`, `machine`, `report` and `run` (the command). See README.md here.
"""
