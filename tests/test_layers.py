import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import torch

from xtts_book.layers import (StateDictError, canonical_weight_norm_keys, check_state_dict, fold_weight_norm,
                              load_torch, to_numpy, torch_keys, weight_norm)


@pytest.mark.parametrize("new_spelling", [True, False])
def test_weight_norm_conv_matches_torch_both_spellings(new_spelling):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(3, 5, 7, padding=3, dilation=1)
    if new_spelling:
        tconv = torch.nn.utils.parametrizations.weight_norm(conv)
    else:
        tconv = torch.nn.utils.weight_norm(conv)
    with torch.no_grad():  # make g differ from ||v|| so the test can fail
        if new_spelling:
            tconv.parametrizations.weight.original0.mul_(torch.rand(5, 1, 1) + 0.5)
        else:
            tconv.weight_g.mul_(torch.rand(5, 1, 1) + 0.5)
    sd = to_numpy(tconv.state_dict())
    ours = load_torch(weight_norm(eqx.nn.Conv1d(3, 5, 7, padding=3, key=jr.key(1))), sd)
    x = np.random.default_rng(0).standard_normal((3, 33)).astype(np.float32)
    want = tconv(torch.from_numpy(x)[None])[0].detach().numpy()
    np.testing.assert_allclose(np.asarray(ours(jnp.asarray(x))), want, atol=1e-5)
    np.testing.assert_allclose(np.asarray(fold_weight_norm(ours)(jnp.asarray(x))), want, atol=1e-5)


def test_plain_conv2d_and_keys():
    t = torch.nn.Conv2d(2, 4, (5, 1), (3, 1), padding=(2, 0))
    ours = eqx.nn.Conv2d(2, 4, (5, 1), (3, 1), padding=((2, 2), (0, 0)), key=jr.key(0))
    assert torch_keys(ours, "convs.0") == {"convs.0.weight": (4, 2, 5, 1), "convs.0.bias": (4,)}
    sd = {f"convs.0.{k}": v for k, v in to_numpy(t.state_dict()).items()}
    ours = load_torch(ours, sd, "convs.0")
    x = np.random.default_rng(1).standard_normal((2, 20, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(ours(jnp.asarray(x))), t(torch.from_numpy(x)[None])[0].detach().numpy(), atol=1e-5)


def test_check_state_dict_lists_everything():
    expected = {"a.weight": (2, 3), "a.bias": (2,), "b.weight": (1,)}
    sd = {"a.weight": np.zeros((3, 2)), "b.weight": np.zeros(1), "extra": np.zeros(1), "discrete_loss.x": np.zeros(1)}
    with pytest.raises(StateDictError) as e:
        check_state_dict(sd, expected, ignore=["discrete_loss."])
    err = e.value
    assert err.missing == ["a.bias"] and err.unexpected == ["extra"]
    assert err.mismatched == [("a.weight", (2, 3), (3, 2))]
    assert "a.bias" in str(err) and "extra" in str(err) and "(2, 3)" in str(err)
    check_state_dict({k: np.zeros(s) for k, s in expected.items()}, expected)  # fits: no error


def test_canonical_keys():
    sd = {"x.parametrizations.weight.original0": 1, "x.parametrizations.weight.original1": 2, "x.bias": 3,
          "parametrizations.weight.original0": 4}
    assert canonical_weight_norm_keys(sd) == {"x.weight_g": 1, "x.weight_v": 2, "x.bias": 3, "weight_g": 4}


def test_to_numpy_copies_torch_buffers():
    t = torch.nn.Conv1d(2, 3, 3)
    sd = to_numpy(t.state_dict())
    before = sd["weight"].copy()
    with torch.no_grad():
        t.weight.mul_(0.0)  # an in-place update of the torch module must not reach the loaded arrays
    np.testing.assert_array_equal(sd["weight"], before)
