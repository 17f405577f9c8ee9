"""Does the compilation cache save the GAN step's memory? Compile the bench's `train_<v>` step (chapter 22's case)
in one process with JAX's persistent compilation cache on, then build it again in a second process, which loads
it from the cache; each process reports the time of its first call (compile or load, plus one step), the next
step and its peak RSS. Takes minutes. Not a test; run by hand:

    PYTHONPATH=$PWD python tools/gan_cache_memory.py [--version v3] [--json results/bench/gan_cache_v3.json]
"""
import argparse, json, resource, subprocess, sys, tempfile, time
from pathlib import Path


def child(version: str, folder: str):
    from xtts_book.profile import compile_cache
    compile_cache(folder)
    from xtts_book import performance
    w = Path(folder) / "w.npz"
    if not w.exists():
        performance._torch_case(f"train_{version}", False, w)
    t = time.time()
    step, _ = performance._jax_case(f"train_{version}", False, w)
    step()
    first = time.time() - t
    t = time.time()
    step()
    print(json.dumps({"first_call_s": first, "step_s": time.time() - t,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--version", default="v3", choices=["v1", "v3"])
    p.add_argument("--json", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.version, a.child)
    res = {"case": f"train_{a.version}"}
    with tempfile.TemporaryDirectory() as d:
        for run in ("compiled", "from_cache"):
            out = subprocess.run([sys.executable, __file__, "--version", a.version, "--child", d], capture_output=True,
                                 text=True, check=True).stdout
            res[run] = json.loads(out.strip().splitlines()[-1])
            print(run, res[run], flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
