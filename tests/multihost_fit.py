"""One of two processes of a two-host training run on this machine (CPU, gloo collectives): `python multihost_fit.py
PROCESS_ID OUT PORT`. Run by tests/test_multihost.py."""
import sys
from pathlib import Path

import jax

pid, out, port = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)
sys.path.insert(0, str(Path(__file__).parent))
from test_train import ToyTask, cfg          # noqa: E402  (the loop's machinery on a tiny stand-in task)
from xtts_book import train                  # noqa: E402

summary = train.fit(ToyTask(cfg(steps=6, batch_size=4)), out, progress=False)
print(f"process {jax.process_index()} of {jax.process_count()}, {jax.device_count()} devices: step {summary['step']}",
      flush=True)
