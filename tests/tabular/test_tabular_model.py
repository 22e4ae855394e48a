"""TabularModel: embedding size rule, layer structure, y_range, inputs with no categorical / continuous."""

import pytest
import torch
from torch import nn

from quickfit.tabular.model import SigmoidRange, TabularModel, emb_sz_rule, get_emb_szs


def test_embedding_size_rule_and_overrides():
    for n in (2, 3, 10, 42, 1000, 10**6):
        assert emb_sz_rule(n) == min(600, round(1.6 * n**0.56))
    assert emb_sz_rule(10**6) == 600
    assert get_emb_szs(["a", "b"], [10, 1000], {"b": 7}) == [(10, emb_sz_rule(10)), (1000, 7)]
    with pytest.raises(KeyError, match=r"emb_szs: \['c'\] are not categorical inputs"):
        get_emb_szs(["a"], [10], {"c": 3})


def test_structure_embeddings_bn_cont_layers():
    model = TabularModel([(10, 6), (3, 2)], n_cont=4, out_sz=3, layers=[20, 10], ps=[0.1, 0.2], embed_p=0.3)
    assert [e.weight.shape for e in model.embeds] == [(10, 6), (3, 2)]
    assert model.embeds[0].weight.abs().max() <= 0.02  # small initial embeddings
    assert model.emb_drop.p == 0.3 and model.bn_cont.num_features == 4
    kinds = [type(m) for m in model.layers]
    lin, relu, bn, drop = nn.Linear, nn.ReLU, nn.BatchNorm1d, nn.Dropout
    assert kinds == [lin, relu, bn, drop, lin, relu, bn, drop, lin]
    assert model.layers[0].in_features == 6 + 2 + 4 and model.layers[-1].out_features == 3
    assert [m.p for m in model.layers if isinstance(m, drop)] == [0.1, 0.2]
    out = model(torch.randint(0, 3, (5, 2)), torch.randn(5, 4))
    assert out.shape == (5, 3)
    with pytest.raises(ValueError, match="one dropout per layer"):
        TabularModel([(10, 6)], 1, 1, layers=[4, 4], ps=[0.1])


def test_forward_matches_a_hand_computation():
    torch.manual_seed(0)
    model = TabularModel([(5, 3)], n_cont=2, out_sz=1, layers=[4]).eval()
    x_cat, x_cont = torch.tensor([[1], [4]]), torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    bn_c, (lin1, _, bn1, lin2) = model.bn_cont, list(model.layers)

    def bn(layer, x):
        return (x - layer.running_mean) / torch.sqrt(layer.running_var + layer.eps) * layer.weight + layer.bias

    h = torch.cat([model.embeds[0].weight[x_cat[:, 0]], bn(bn_c, x_cont)], 1)
    h = bn(bn1, torch.relu(h @ lin1.weight.T))
    expected = h @ lin2.weight.T + lin2.bias
    torch.testing.assert_close(model(x_cat, x_cont), expected)


def test_y_range_scaled_sigmoid():
    torch.manual_seed(0)
    model = TabularModel([(4, 3)], n_cont=2, out_sz=2, y_range=(-1.0, 5.0))
    assert isinstance(model.layers[-1], SigmoidRange)
    out = model(torch.randint(0, 4, (64, 1)), torch.randn(64, 2) * 100)
    assert out.min() > -1.0 and out.max() < 5.0
    x = torch.linspace(-5, 5, 11)
    torch.testing.assert_close(SigmoidRange(2.0, 4.0)(x), 2.0 + 2.0 * torch.sigmoid(x))
    with pytest.raises(ValueError, match="high > low"):
        SigmoidRange(3.0, 1.0)


def test_only_categorical_or_only_continuous_inputs():
    only_cat = TabularModel([(4, 3)], n_cont=0, out_sz=2)
    assert only_cat(torch.randint(0, 4, (3, 1)), torch.zeros(3, 0)).shape == (3, 2)
    only_cont = TabularModel([], n_cont=3, out_sz=2)
    assert only_cont(torch.zeros(3, 0, dtype=torch.long), torch.randn(3, 3)).shape == (3, 2)
    with pytest.raises(ValueError, match="no inputs"):
        TabularModel([], n_cont=0, out_sz=1)
