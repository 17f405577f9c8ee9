"""The GPU check: what the `gpu` profile does on a real accelerator, in one run of at most about 8 minutes.

    tools/gpu_check.sh            # on a GPU machine: writes results/bench/gpu/<device>.json
    tools/gpu_check.sh --dry      # anywhere: the same steps at the `ci` sizes on the CPU (CI runs this)

1. an espeak corpus of 12 clips: `.gpu-corpus/` when tools/gpu_wheels.sh built it (the espeak voices are 10 MB
   of wheel, the corpus 5), else built here;
2. a few training steps of each model in the `gpu` profile, bf16 on (HiFi-GAN: V1, the full MPD + MSD, batch 16);
3. bf16 against fp32 on the same batch and weights: the generator's mel L1 and the DVAE's loss, within `TOL`;
4. V1 and V3 inference and the V1 GAN step timed in JAX and in PyTorch (CUDA), in this run (`xtts_book.bench`);
5. everything into one JSON file.

In `--dry` mode the profile is `ci`, the HiFi-GAN run stops inside its warm-up (its GAN step takes minutes to
compile on two CPU cores) and the timed cases are the tiny inference ones."""
import argparse, json, os, re, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOL = {"gen_mel_l1": 0.02, "dvae_loss": 0.02}   # |bf16 - fp32| / |fp32|, at most


def device_name() -> str:
    import jax
    d = jax.devices()[0]
    return d.device_kind if d.platform != "cpu" else "cpu"


def train_steps(model: str, profile: str, corpus: Path, out: Path, steps: int) -> dict:
    "A few steps of `model` in `profile` with bf16 on: seconds to the first step, then per step."
    from xtts_book import recipes, train
    cfg = recipes.recipe(model, profile, mixed_precision=True, steps=steps, val_every=10**6, ckpt_every=10**6,
                         log_every=1)
    task = recipes.make_task(cfg, corpus)
    lines = []
    t0 = time.perf_counter()
    summary = train.fit(task, out, progress=False, log=lines.append)
    recs = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if l.strip()]
    losses = [r.get("loss_g", r.get("loss")) for r in recs if "step" in r and ("loss_g" in r or "loss" in r)]
    first = next((l for l in lines if l.startswith("step 1 done")), "")
    m = re.search(r"\(([\d.]+) s after fit", first)
    return {"profile": profile, "steps": summary["step"], "batch": cfg.batch_size, "segment": cfg.segment_size,
            "wall_s": time.perf_counter() - t0, "first_step_s": float(m.group(1)) if m else None,
            "losses": losses, "finite": all(l is not None and l == l and abs(l) < float("inf") for l in losses)}


def bf16_vs_fp32(profile: str, corpus: Path) -> dict:
    """The same batch and weights through fp32 and through the mixed-precision compute (bf16) the training steps
    use (`train_gan._run_gen`, `train_dvae.bf16_islands`): the generator's mel L1 and the DVAE's loss."""
    import jax.numpy as jnp, jax.random as jr, equinox as eqx
    from xtts_book import recipes
    from xtts_book.audio import dvae_mel, hifigan_mel
    from xtts_book.discriminators import mel_loss
    from xtts_book.train_gan import _run_gen
    from xtts_book.train_dvae import bf16_islands
    from xtts_book.vqvae import dvae_loss
    out = {}
    task = recipes.make_task(recipes.recipe("hifigan", profile), corpus)
    gen, y = task.init(jr.PRNGKey(0)).gen, jnp.asarray(task.batch(0))
    f = eqx.filter_jit(lambda g, y, dt: mel_loss(y[:, None], _run_gen(g, hifigan_mel(y), dt)))
    a, b = float(f(gen, y, None)), float(f(gen, y, jnp.bfloat16))
    out["gen_mel_l1"] = {"fp32": a, "bf16": b, "rel": abs(b - a) / abs(a)}
    task = recipes.make_task(recipes.recipe("dvae", profile), corpus)
    st = task.init(jr.PRNGKey(0))
    mels = dvae_mel(jnp.asarray(task.batch(0)), st.mel_norms)     # the batch is at the input level already
    mels = mels[..., : mels.shape[-1] // 4 * 4]
    f = eqx.filter_jit(lambda m, e, x, dt: dvae_loss(bf16_islands(m, dt), e, x)[0])
    a, b = float(f(st.model, st.ema, mels, None)), float(f(st.model, st.ema, mels, jnp.bfloat16))
    out["dvae_loss"] = {"fp32": a, "bf16": b, "rel": abs(b - a) / abs(a)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry", action="store_true", help="CPU, ci sizes: checks the script itself")
    ap.add_argument("--out", default=None, help="the JSON file (default results/bench/gpu/<device>.json; "
                    "--dry: $OUT/gpu_check_dry.json or a temporary folder)")
    ap.add_argument("--repeats", type=int, default=None, help="blocks of timed steps per side (default 3; 1 dry)")
    ap.add_argument("--corpus", default=None, help="a built corpus folder (default: .gpu-corpus/ if there, else "
                    "an espeak corpus built in a temporary folder)")
    a = ap.parse_args(argv)
    import jax
    if not a.dry and jax.default_backend() == "cpu":
        print("gpu_check: JAX sees no accelerator (use --dry to check the script on a CPU)", file=sys.stderr)
        return 2
    profile = "ci" if a.dry else "gpu"
    os.environ["XTTS_BOOK_PROFILE"] = profile
    res = {"device": device_name(), "backend": jax.default_backend(), "dry": a.dry, "profile": profile,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "tolerance": TOL}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as d:
        d = Path(d)
        from xtts_book.data import build_corpus
        corpus = Path(a.corpus) if a.corpus else ROOT / ".gpu-corpus"
        if not (corpus / "manifest.jsonl").exists() or a.dry:
            corpus = build_corpus("espeak", d / "corpus", limit=12, val_fraction=0.25, progress=False)
        res["corpus"] = {"clips": sum(1 for _ in open(corpus / "manifest.jsonl"))}
        res["train"] = {"hifigan": train_steps("hifigan", profile, corpus, d / "hifigan", 2 if a.dry else 3),
                        "dvae": train_steps("dvae", profile, corpus, d / "dvae", 2 if a.dry else 3)}
        print("train:", json.dumps(res["train"]), flush=True)
        res["bf16"] = bf16_vs_fp32(profile, corpus)
        print("bf16 vs fp32:", json.dumps(res["bf16"]), flush=True)
    from xtts_book.bench import machine_info, run_case
    os.environ.setdefault("XTTS_BENCH_TORCH_DEVICE", "cpu" if a.dry else "cuda")
    os.environ.setdefault("XTTS_BENCH_SIZES", "cpu" if a.dry else "gpu")
    res["machine"] = machine_info()
    res["cases"] = {}
    for case in (("infer_v1", "infer_v3") if a.dry else ("infer_v1", "infer_v3", "train_v1")):
        res["cases"][case] = run_case(case, quick=a.dry, repeats=a.repeats or (1 if a.dry else 3))
        print(f"{case}: JAX / PyTorch {res['cases'][case]['ratio']:.2f}", flush=True)
    res["wall_s"] = time.perf_counter() - t_all
    res["ok"] = (all(t["finite"] for t in res["train"].values())
                 and all(v["rel"] <= TOL[k] for k, v in res["bf16"].items()))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", res["device"]).strip("-").lower() or "device"
    out = Path(a.out) if a.out else (
        Path(os.environ.get("OUT") or tempfile.mkdtemp()) / "gpu_check_dry.json" if a.dry
        else ROOT / "results" / "bench" / "gpu" / f"{slug}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(out)
    print(f"gpu_check: {'ok' if res['ok'] else 'FAILED'} in {res['wall_s']:.0f} s -> {out}")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
