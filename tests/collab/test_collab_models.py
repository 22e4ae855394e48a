"""Collab models against a hand computation, their y_range, config round trip and bad arguments."""

import json

import pytest
import torch

from quickfit.collab.models import (
    EmbeddingDotBias,
    EmbeddingNN,
    EmbeddingNNConfig,
    emb_sz_rule,
    sigmoid_range,
)


def test_dot_bias_matches_hand_computation():
    torch.manual_seed(0)
    m = EmbeddingDotBias(4, n_users=5, n_items=7, y_range=(0.5, 5.5))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    x = torch.tensor([[1, 2], [4, 6], [0, 0]])
    u, i = x[:, 0], x[:, 1]
    raw = (m.u_weight.weight[u] * m.i_weight.weight[i]).sum(1) + m.u_bias[u] + m.i_bias[i]
    torch.testing.assert_close(m(x), torch.sigmoid(raw) * 5.0 + 0.5)
    m.y_range = None
    torch.testing.assert_close(m(x), raw)


def test_dot_bias_gradients_reach_only_the_rows_used():
    m = EmbeddingDotBias(3, 4, 4)
    m(torch.tensor([[1, 2]])).sum().backward()
    g = m.u_weight.weight.grad
    assert g[1].abs().sum() > 0 and g[[0, 2, 3]].abs().sum() == 0


def test_y_range_bounds_predictions():
    m = EmbeddingDotBias(2, 3, 3, y_range=(1, 5))
    with torch.no_grad():
        m.u_bias.fill_(100.0)
    out = m(torch.tensor([[1, 1], [2, 2]]))
    assert (out <= 5).all() and (out > 4.99).all()
    assert sigmoid_range(torch.tensor([-1e4]), 1, 5).item() == 1.0
    with pytest.raises(ValueError, match="y_range"):
        EmbeddingDotBias(2, 3, 3, y_range=(5, 1))


def test_embedding_nn_shapes_and_layers():
    m = EmbeddingNN([(10, 4), (20, 6)], layers=(8, 5), ps=[0.1, 0.2], embed_p=0.05, y_range=(0, 5.5))
    x = torch.stack([torch.randint(0, 10, (16,)), torch.randint(0, 20, (16,))], 1)
    out = m(x)
    assert out.shape == (16,) and (out > 0).all() and (out < 5.5).all()
    assert m.layers[0].in_features == 10 and m.layers[-1].out_features == 1
    assert m.n_users == 10 and m.n_items == 20 and m.i_weight.weight.shape == (20, 6)
    with pytest.raises(ValueError, match="ps has 1 values but layers has 2"):
        EmbeddingNN([(10, 4), (20, 6)], layers=(8, 5), ps=[0.1])
    with pytest.raises(ValueError, match="emb_szs"):
        EmbeddingNN([(10, 4)])


@pytest.mark.parametrize(
    "model",
    [EmbeddingDotBias(3, 5, 6, y_range=(0, 5.5)), EmbeddingNN([(5, 3), (6, 2)], (4,), 0.1, 0.0, None, False)],
)
def test_config_round_trip_rebuilds_the_same_model(model):
    model.eval()
    config = model.config()
    rebuilt = type(config).from_dict(json.loads(json.dumps(config.to_dict()))).build().eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.tensor([[1, 2], [4, 5]])
    torch.testing.assert_close(rebuilt(x), model(x))
    with pytest.raises(ValueError, match=r"unknown keys \['n_factors'\]"):
        EmbeddingNNConfig.from_dict({"type": "embedding_nn", "n_factors": 3})


def test_emb_sz_rule():
    assert [emb_sz_rule(n) for n in (2, 10, 944, 1683, 10**7)] == [
        2,
        6,
        74,
        103,
        600,
    ]  # fastai: (944, 74) users on ML-100k
