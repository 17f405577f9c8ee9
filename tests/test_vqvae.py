"""Parity of xtts_book.vqvae with the real coqui-tts DiscreteVAE (XTTS-v2 config), and its properties."""
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

torch = pytest.importorskip("torch")
dvae_ref = pytest.importorskip("TTS.tts.layers.xtts.dvae")

from xtts_book.layers import StateDictError, count_params, to_numpy
from xtts_book.train_dvae import dvae_optimizer, make_dvae_step
from xtts_book.vqvae import DVAEConfig, DiscreteVAE, dvae_from_torch, dvae_loss, dvae_to_torch

from xtts_book.vqvae import dvae_forward as _dvae_forward

dvae_forward = eqx.filter_jit(_dvae_forward)      # one compile instead of op-by-op dispatch

from xtts_book.reference import TORCH_DVAE as XTTS   # the reference DVAE's constructor arguments in XTTS-v2


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def spread_codebook(ref, mel, seed=0):
    """Put the reference codebook near its own encoder outputs, so that many codes are in use."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = ref.encoder(mel).permute(0, 2, 1).reshape(-1, ref.codebook.dim)
        D, K = ref.codebook.embed.shape
        pick = torch.randint(0, z.shape[0], (K,), generator=g)
        embed = (z[pick] + 0.5 * z.std() * torch.randn(K, D, generator=g)).T.contiguous()
        cs = torch.rand(K, generator=g) * 2
        ref.codebook.embed.copy_(embed)
        ref.codebook.cluster_size.copy_(cs)
        ref.codebook.embed_avg.copy_(embed * cs[None])


@pytest.fixture(scope="module")
def xtts_pair():
    torch.manual_seed(0)
    ref = dvae_ref.DiscreteVAE(**XTTS)
    mel = 1 + 0.3 * torch.randn(3, 80, 64, generator=torch.Generator().manual_seed(1))
    spread_codebook(ref, mel)
    model, state = dvae_from_torch(to_numpy(ref.state_dict()))     # discrete_loss.* buffers included
    return ref, model, state, mel


def test_param_count_and_config(xtts_pair):
    ref, model, _, _ = xtts_pair
    n_ref = sum(p.numel() for p in ref.parameters() if p.requires_grad)
    assert n_ref == 51_567_184 == count_params(model)
    assert model.config == DVAEConfig()


def test_eval_parity(xtts_pair):
    ref, model, state, mel = xtts_pair
    ref.eval()
    with torch.no_grad():
        recon_t, commit_t, out_t = ref(mel)
        codes_t = ref.get_codebook_indices(mel)
    inf = eqx.nn.inference_mode(model)
    o, state2 = dvae_forward(inf, state, jnp.asarray(mel.numpy()))
    codes = jax.vmap(model.get_codebook_indices, in_axes=(0, None))(jnp.asarray(mel.numpy()), state)
    assert len(np.unique(codes_t.numpy())) > 20, "test codebook too collapsed to mean much"
    np.testing.assert_array_equal(np.asarray(codes), codes_t.numpy())
    np.testing.assert_array_equal(np.asarray(o.codes), codes_t.numpy())
    assert rel_err(o.out, out_t.numpy()) < 1e-4
    assert rel_err(o.recon, recon_t.numpy()) < 1e-4
    assert rel_err(o.commitment.mean(), commit_t.numpy()) < 1e-4
    # inference mode leaves the state alone
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(state2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # decode(get_codebook_indices(mel)) is the eval-mode output, here and in the reference
    dec = jax.vmap(model.decode, in_axes=(0, None))(codes, state)
    np.testing.assert_allclose(np.asarray(dec), np.asarray(o.out), rtol=0, atol=1e-6)
    with torch.no_grad():
        dec_t, _ = ref.decode(codes_t)
    assert rel_err(dec, dec_t.numpy()) < 1e-4


def test_training_step_parity(xtts_pair):
    """One training-mode forward: same outputs and the same EMA update of embed, embed_avg, cluster_size."""
    ref, model, state, mel = xtts_pair
    ref.train()
    with torch.no_grad():
        recon_t, commit_t, out_t = ref(mel)
    o, new_state = dvae_forward(model, state, jnp.asarray(mel.numpy()))
    assert rel_err(o.out, out_t.numpy()) < 1e-4
    assert rel_err(o.recon, recon_t.numpy()) < 1e-4
    assert rel_err(o.commitment.mean(), commit_t.numpy()) < 1e-4
    s = new_state.get(model.quantizer.state_index)
    for name in ("embed", "embed_avg", "cluster_size"):
        theirs = getattr(ref.codebook, name).numpy()
        assert rel_err(s[name], theirs) < 1e-4, name


TINY = dict(channels=80, normalization=None, positional_dims=1, num_tokens=16, codebook_dim=8, hidden_dim=8,
            num_resnet_blocks=1, kernel_size=3, num_layers=2, use_transposed_convs=False)


def test_gradient_parity():
    """The loss recon.mean() + commitment and its gradients (straight-through path) agree with PyTorch's."""
    torch.manual_seed(2)
    ref = dvae_ref.DiscreteVAE(**TINY)
    mel = 1 + 0.3 * torch.randn(2, 80, 32, generator=torch.Generator().manual_seed(5))
    spread_codebook(ref, mel)
    model, state = dvae_from_torch(to_numpy(ref.state_dict()))
    ref.train()
    recon_t, commit_t, _ = ref(mel)
    loss_t = recon_t.mean() + commit_t
    loss_t.backward()
    loss, grads = eqx.filter_jit(eqx.filter_value_and_grad(lambda m: dvae_loss(m, state, jnp.asarray(mel.numpy()))[0]))(model)
    assert rel_err(loss, loss_t.item()) < 1e-5
    pairs = [(grads.decoder.out.weight, ref.decoder[-1].weight), (grads.decoder.ups[0].conv.weight, ref.decoder[2][0].conv.weight),
             (grads.encoder.proj.weight, ref.encoder[-1].weight), (grads.encoder.downs[0].weight, ref.encoder[0][0].weight)]
    for ours, p in pairs:
        assert rel_err(ours, p.grad.numpy()) < 1e-4


def test_balancing_heuristic_parity(monkeypatch):
    """Tortoise's heuristic step by step: same record, same resets, same buffers (randn shared via patching)."""
    torch.manual_seed(3)
    ref = dvae_ref.DiscreteVAE(**TINY)
    ref.codebook.balancing_heuristic = True
    ref.codebook.max_codes = 60
    ref.train()
    # the reference calls torch.histc on int64 codes, which PyTorch's CPU kernel refuses
    # ("histogram_cpu" not implemented for 'Long'): feed it floats, as a GPU run would need too
    histc = torch.histc
    monkeypatch.setattr(torch, "histc", lambda x, *a, **k: histc(x.float(), *a, **k))
    model, state = dvae_from_torch(to_numpy(ref.state_dict()))
    cfg = dataclasses.replace(model.config, balancing_heuristic=True, max_codes=60)
    model, state = dvae_from_torch(to_numpy(ref.state_dict()), cfg)
    idx = model.quantizer.state_index
    resets = 0
    g = torch.Generator().manual_seed(4)
    for step in range(14):
        mel = 1 + 0.3 * torch.randn(2, 80, 32, generator=g)      # 16 codes per step
        s = state.get(idx)
        fresh = np.asarray(jr.normal(jr.split(s["key"])[1], (8, 16))).T.copy()   # what our reset will draw
        monkeypatch.setattr(torch, "randn_like", lambda t: torch.from_numpy(fresh) * torch.ones_like(t))
        full_before = ref.codebook.codes_full
        with torch.no_grad():
            _, _, out_t = ref(mel)
        o, state = dvae_forward(model, state, jnp.asarray(mel.numpy()))
        s = state.get(idx)
        resets += int(full_before and not ref.codebook.codes_full)
        assert rel_err(o.out, out_t.numpy()) < 1e-4, step
        for name in ("embed", "embed_avg", "cluster_size"):
            assert rel_err(s[name], getattr(ref.codebook, name).numpy()) < 1e-4, (step, name)
        codes_t = ref.codebook.codes.numpy()
        assert bool(s["codes_full"]) == ref.codebook.codes_full, step
        assert int(s["codes_len"]) == min(len(codes_t), 60), step
        n = int(s["codes_len"])
        ring = np.roll(np.asarray(s["codes"]), -int(s["codes_ptr"]))[-n:] if s["codes_full"] else np.asarray(s["codes"])[:n]
        np.testing.assert_array_equal(np.sort(ring), np.sort(codes_t[-n:]))
    assert resets >= 1, "the heuristic never fired: the test shows nothing"


def test_dead_code_restart():
    cfg = DVAEConfig(num_tokens=32, codebook_dim=16, hidden_dim=16, num_resnet_blocks=1, dead_code_threshold=0.05)
    model, state = eqx.nn.make_with_state(DiscreteVAE)(cfg, key=jr.key(0))
    mels = jr.normal(jr.key(1), (4, 80, 16))
    o, new = dvae_forward(model, state, mels)
    s = new.get(model.quantizer.state_index)
    z = eqx.filter_jit(lambda m, x: jax.vmap(m.encoder)(x))(model, mels)
    z = np.asarray(z).transpose(0, 2, 1).reshape(-1, 16)                               # all batch vectors
    used = np.unique(np.asarray(o.codes))
    dead = np.setdiff1d(np.arange(32), used)
    assert len(dead) > 0
    for k in dead:      # every dead code (cluster size 0.01 * 0 < 0.05) is now one of the batch's vectors
        d = np.abs(z - np.asarray(s["embed"])[:, k]).max(1)
        assert d.min() < 1e-5, k
        np.testing.assert_allclose(np.asarray(s["embed_avg"])[:, k], np.asarray(s["embed"])[:, k] * 0.05, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(s["cluster_size"])[dead], 0.05)


def test_bad_inputs():
    cfg = DVAEConfig(num_tokens=8, codebook_dim=4, hidden_dim=4, num_resnet_blocks=1)
    model, state = eqx.nn.make_with_state(DiscreteVAE)(cfg, key=jr.key(0))
    with pytest.raises(ValueError, match="multiple of 4"):
        _dvae_forward(model, state, jnp.zeros((2, 80, 10)))
    with pytest.raises(ValueError, match=r"\(80, t\)"):
        _dvae_forward(model, state, jnp.zeros((2, 40, 16)))
    with pytest.raises(ValueError, match="axis_name"):
        model(jnp.zeros((80, 16)), state)
    sd = dvae_to_torch(model, state)
    sd.pop("codebook.embed_avg")
    sd["codebook.cluster_size"] = np.zeros(9)
    sd["encoder.9.weight"] = np.zeros(1)
    with pytest.raises(StateDictError) as e:
        dvae_from_torch(sd, cfg)
    assert all(k in str(e.value) for k in ("codebook.embed_avg", "codebook.cluster_size", "encoder.9.weight"))


def test_train_step_learns():
    cfg = DVAEConfig(num_tokens=16, codebook_dim=8, hidden_dim=16, num_resnet_blocks=1)
    model, state = eqx.nn.make_with_state(DiscreteVAE)(cfg, key=jr.key(0))
    opt = dvae_optimizer(3e-3)
    opt_state = opt.init(eqx.filter(model, eqx.is_array))
    step = make_dvae_step(opt)
    mels = jnp.tile(jnp.sin(jnp.arange(32) / 3)[None, None], (4, 80, 1)) + jr.normal(jr.key(2), (4, 80, 32)) * 0.1
    losses = []
    for _ in range(30):
        model, state, opt_state, m = step(model, state, opt_state, mels)
        losses.append(float(m["dvae/recon_loss"]))
    assert losses[-1] < 0.6 * losses[0], losses
    assert set(m) >= {"dvae/recon_loss", "vq/commitment_loss", "vq/perplexity"}


SHARDED = r'''
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"
import equinox as eqx, jax, jax.random as jr, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from xtts_book.vqvae import DVAEConfig, DiscreteVAE, dvae_forward
assert len(jax.devices()) == 2
cfg = DVAEConfig(num_tokens=16, codebook_dim=8, hidden_dim=8, num_resnet_blocks=1, balancing_heuristic=True,
                 max_codes=20, dead_code_threshold=0.05)
model, state = eqx.nn.make_with_state(DiscreteVAE)(cfg, key=jr.key(0))
f = eqx.filter_jit(dvae_forward)
mesh = jax.make_mesh((2,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))   # as xtts_book.train.make_mesh
s1 = s2 = state
for i in range(3):
    mels = jr.normal(jr.key(i + 1), (4, 80, 16))
    o1, s1 = f(model, s1, mels)
    sharded = jax.device_put(mels, NamedSharding(mesh, P("batch")))
    assert len(sharded.sharding.device_set) == 2
    o2, s2 = f(model, s2, sharded)
    np.testing.assert_array_equal(np.asarray(o1.codes), np.asarray(o2.codes))
    for a, b in zip(jax.tree_util.tree_leaves(s1), jax.tree_util.tree_leaves(s2)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
print("sharded ok")
'''


def test_batch_sharded_over_devices_updates_like_one_device():
    """EMA sums, the code record and the restart samples cover the whole batch when it is split across devices."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "sharded ok" in r.stdout, r.stderr[-3000:]
