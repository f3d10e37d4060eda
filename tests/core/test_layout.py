"""The layout's promises: one-way imports without cycles, and a Paddle-free, portable runtime."""
import subprocess
import sys

import grimp

PACKAGES = ("distill", "teachers", "students")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_the_runtime_imports_no_paddle():
    done = _run("import sys, distill.serve, distill.predict, distill.text.encoders\n"
                "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
                "('paddle', 'paddleslim', 'paddle2onnx', 'teachers', 'students'))\n"
                "print(heavy)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_runtime_starts_without_sched_getaffinity():
    # macOS and Windows have no os.sched_getaffinity
    done = _run("import os\n"
                "del os.sched_getaffinity\n"
                "import distill.serve\n"
                "from distill.core.runtime import usable_cores\n"
                "print(usable_cores(), os.environ['OMP_NUM_THREADS'])")
    assert done.returncode == 0, done.stderr
    cores, omp = done.stdout.split()
    assert int(cores) >= 1 and int(omp) >= 1


def _cycles(graph) -> list:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]; counter[0] += 1
                    stack.append(child); on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop(); on_stack.discard(member); component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_not_even_through_function_local_imports():
    graph = grimp.build_graph(*PACKAGES)  # grimp records imports inside functions too
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for a, b in (("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")):
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [["a", "b", "c"]]
