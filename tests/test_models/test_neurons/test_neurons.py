"""Forward and gradient of each neuron against hand-computed references, and bad arguments."""
import pytest
import torch

from mmspike.models.neurons import ILIF, LIF, IntegerNeuron, MultiSpike, round_half_up


def test_multispike_forward_hand_computed():
    x = torch.tensor([[-1.0, 0.2, 0.5, 1.5, 2.49, 2.5, 3.7, 9.0]])
    # round half up of clamp(x, 0, 4): 0 0 1 2 2 3 4 4, then / norm (4)
    expected = torch.tensor([[0, 0, 1, 2, 2, 3, 4, 4]]) / 4
    assert torch.equal(MultiSpike()(x), expected)
    assert torch.equal(MultiSpike(norm=1)(x), expected * 4)
    # half-even rounding sends the ties 0.5 and 2.5 to 0 and 2
    assert torch.equal(MultiSpike(norm=1, round_mode='half_even')(x),
                       torch.tensor([[0., 0, 0, 2, 2, 2, 4, 4]]))
    assert torch.equal(MultiSpike(max_spikes=8, norm=1)(x), torch.tensor([[0., 0, 1, 2, 2, 3, 4, 9]])
                       .clamp(max=8))


@pytest.mark.parametrize('window,expected', [
    ('closed', [0, 1, 1, 1, 1, 0]),
    ('open', [0, 0, 1, 1, 0, 0]),
])
def test_multispike_straight_through_gradient(window, expected):
    x = torch.tensor([[-0.5, 0.0, 1.3, 3.9, 4.0, 4.5]], requires_grad=True)
    MultiSpike(grad_window=window)(x).sum().backward()
    # ds/du = 1 / norm inside the window, 0 outside
    assert torch.allclose(x.grad, torch.tensor([expected], dtype=torch.float) / 4)


def test_multispike_saves_mask_not_float_input():
    x = torch.randn(2, 3, 8, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        MultiSpike(norm=1)(x)
    assert saved and all(t.dtype == torch.bool for t in saved), [t.dtype for t in saved]


def test_ilif_dynamics_and_gradient():
    x = torch.tensor([[1.3], [1.0], [3.0], [0.0]], requires_grad=True)
    out = ILIF()(x)
    # u0=1.3 s=1; u1=(1.3-1)*.25+1=1.075 s=1; u2=(.075)*.25+3=3.01875 s=3; u3=.00469 s=0
    assert torch.equal(out, torch.tensor([[1.], [1.], [3.], [0.]]))
    out.sum().backward()
    # reset detached: d out_t / d x_{t-k} = leak^k (all inside the window)
    assert torch.allclose(x.grad, torch.tensor([[1 + .25 + .0625 + .015625], [1 + .25 + .0625],
                                                [1 + .25], [1.]]))


def test_multispike_time_steps_are_independent():
    x = torch.tensor([[3.2], [0.2]])
    assert torch.equal(MultiSpike(norm=1)(x), torch.tensor([[3.], [0.]]))


def test_lif_dynamics_hand_computed():
    x = torch.tensor([[1.5], [1.5], [0.5], [3.0]], requires_grad=True)
    lif = LIF()
    out = lif(x)
    # h0=.75 (no spike) ; h1=.75+(1.5-.75)/2=1.125 spike, reset 0; h2=.25; h3=.25+(3-.25)/2=1.625
    assert torch.equal(out, torch.tensor([[0.], [1.], [0.], [1.]]))
    out[3].sum().backward()
    # d out_3/d x_3 = sg'(h3 - 1) / tau with sg' = 4 sig(4z)(1 - sig(4z))
    z = torch.tensor(0.625)
    sg = torch.sigmoid(4 * z)
    assert torch.allclose(x.grad[3], 4 * sg * (1 - sg) / 2)
    assert x.grad[0] == 0 and x.grad[1] == 0  # hard reset at t=1 (detached) cuts the history


def test_lif_threshold():
    out = LIF(v_threshold=0.5)(torch.tensor([[1.0], [0.0]]))
    assert torch.equal(out, torch.tensor([[1.0], [0.0]]))


def test_round_half_up_exact_in_low_precision():
    # 0.49976 + 0.5 rounds to 1.0 in fp16: a naive floor(x + .5) would fire here.
    x = torch.tensor([0.49976, 1.5, 2.498, -0.5], dtype=torch.float16)
    assert torch.equal(round_half_up(x), torch.tensor([0., 2., 2., 0.], dtype=torch.float16))


@pytest.mark.parametrize('kwargs,match', [
    (dict(max_spikes=0), 'max_spikes'),
    (dict(max_spikes=2.5), 'max_spikes'),
    (dict(norm=0), 'norm'),
    (dict(norm=-1.0), 'norm'),
    (dict(round_mode='nearest'), 'round_mode'),
    (dict(grad_window='half'), 'grad_window'),
])
def test_integer_neuron_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IntegerNeuron(**kwargs)


def test_lif_bad_arguments():
    with pytest.raises(ValueError, match='tau'):
        LIF(tau=0.5)
    with pytest.raises(ValueError, match='v_threshold'):
        LIF(v_threshold=0)


def test_neuron_rejects_input_without_time_axis():
    with pytest.raises(ValueError, match=r'\[T, \.\.\.\]'):
        MultiSpike()(torch.tensor([1.0, 2.0]))


def test_integer_neuron_hard_reset_sets_membrane_to_zero():
    neuron = IntegerNeuron(max_spikes=4, norm=1, leak=0.5, reset='hard')
    # t0: u=3 fires 3 and resets to 0; t1: u = 0.5 * 0 + 1 = 1 fires 1
    assert torch.equal(neuron(torch.tensor([[3.0], [1.0]])), torch.tensor([[3.0], [1.0]]))
    # no spike, no reset: t1 u = 0.5 * 0.4 + 0.4 = 0.6 -> 1
    assert torch.equal(neuron(torch.tensor([[0.4], [0.4]])), torch.tensor([[0.0], [1.0]]))
