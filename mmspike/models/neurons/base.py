"""The one spiking-neuron family of mmspike.

Time convention: every neuron is *multi-step*. Its forward takes the whole sequence ``x`` of shape
``[T, ...]`` (``[T, B, C, H, W]`` for maps, ``[T, B, N, C]`` for tokens) and returns spikes of the same
shape. The membrane potential lives in a local variable of ``forward`` while it loops over ``T``;
nothing is stored on the module, so there is nothing to reset and no state can leak between batches,
sliding windows or inference APIs.

A neuron integrates, fires and resets::

    u_t = leak * (u_{t-1} - reset(s_{t-1})) + x_t      (charge; ``u_0 = 0``)
    s_t = fire(u_t)                                    (spike, in integer units)
    out_t = s_t / norm                                 (what the next layer sees)

:class:`MultiSpike` (leak 0: every step independent) and :class:`ILIF` (leak 0.25, soft reset) are
configurations of :class:`IntegerNeuron`; :class:`LIF` is the binary hard-reset subclass.
"""
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ..execution import ExecutionModeMixin
from ..module_state import restoring
from . import kernels
from .rounding import ROUND_CODES, ROUND_MODES, round_half_up, round_to_int  # noqa: F401

GRAD_WINDOWS = ('closed', 'open')


class _FusedFire(torch.autograd.Function):
    """Fast path: ``round(clamp(u, 0, D)) / norm`` with a straight-through gradient inside a
    window, in one fused pass each way (:mod:`.kernels`).

    Backward needs only the window, so a bool mask (one byte per element) is all that is saved,
    never the float input: activation memory is the cost of SNN training.
    """

    @staticmethod
    def forward(ctx, u: Tensor, max_spikes: int, norm: float, rounding: int,
                open_window: bool, backend: str, on_nonfinite) -> Tensor:
        out, window = kernels.fire_forward(u, max_spikes, norm, rounding, open_window,
                                           code='window', backend=backend,
                                           on_nonfinite=on_nonfinite)
        ctx.save_for_backward(window)
        ctx.norm, ctx.backend = norm, backend
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (window, ) = ctx.saved_tensors
        return (kernels.fire_backward(grad, window, ctx.norm, backend=ctx.backend), None, None,
                None, None, None, None)


def fused_fire(u: Tensor, max_spikes: int, norm: float = 1.0, rounding: int = 1,
               open_window: bool = False, backend: str = 'auto',
               on_nonfinite: Optional[Callable[[Tensor, int], None]] = None) -> Tensor:
    """Fast-path integer firing ``round(clamp(u, 0, D)) / norm`` (rounding code of
    :data:`ROUND_CODES`, True = half up; straight-through gradient on the window ``[0, D]``, or
    ``(0, D)`` with ``open_window``) with kernel ``backend`` (:mod:`.kernels`); no saved state
    without grad. ``on_nonfinite(u, n)`` is called when ``u`` holds ``n > 0`` NaN / +-Inf
    (counted in the firing pass by the C kernel)."""
    if torch.is_grad_enabled() and u.requires_grad:
        return _FusedFire.apply(u, max_spikes, float(norm), int(rounding), open_window, backend,
                                on_nonfinite)
    return kernels.fire_forward(u, max_spikes, norm, int(rounding), open_window, code=None,
                                backend=backend, on_nonfinite=on_nonfinite)[0]


class _PlainFire(torch.autograd.Function):
    """Plain path, the upstream way: ``round(clamp(u, 0, D))`` that keeps the float input for
    backward and masks the gradient with comparisons on it there."""

    @staticmethod
    def forward(ctx, u: Tensor, max_spikes: int, rounding: int, open_window: bool) -> Tensor:
        ctx.save_for_backward(u)
        ctx.max_spikes, ctx.open_window = max_spikes, open_window
        return round_to_int(u.clamp(0, max_spikes), rounding)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (u, ) = ctx.saved_tensors
        grad = grad.clone()
        if ctx.open_window:
            grad[u <= 0] = 0
            grad[u >= ctx.max_spikes] = 0
        else:
            grad[u < 0] = 0
            grad[u > ctx.max_spikes] = 0
        return grad, None, None, None


def plain_fire(u: Tensor, max_spikes: int, rounding: int = 1,
               open_window: bool = False) -> Tensor:
    """Plain-path integer firing ``round(clamp(u, 0, D))`` (rounding code of
    :data:`ROUND_CODES`, True = half up; straight-through gradient on the window), as the
    upstream code computes it: the float input is kept for backward. The reference the fast
    path is tested and benchmarked against."""
    return _PlainFire.apply(u, max_spikes, int(rounding), open_window)


def expand_to_binary(u: Tensor, max_spikes: int, round_mode: str = 'half_up') -> Tensor:
    """Spike-driven expansion of the integer firing of ``u`` (Proposition 1 of E-SpikeFormer).

    An integrate-and-fire neuron with threshold 1 and soft reset is charged once with ``u`` (plus the
    rounding offset 0.5 as its initial potential, ``v_0 = u + 0.5``) and then runs ``D`` virtual
    steps, subtracting 1 after each spike. Below 0 it never fires and ``D`` steps cap it at ``D``;
    the firing rule sets the rounding of the spike count ``n``:

    * ``'half_up'``: fire iff ``v_k >= 1`` -> ``n = round_half_up(clamp(u, 0, D))``;
    * ``'half_even'``: fire iff ``v_k > 1``, or ``v_k == 1`` and the spikes fired so far are odd
      (a tie-aware threshold: one parity bit of state) -> ``n = torch.round(clamp(u, 0, D))``.
      ``v_k == 1`` means ``u = k + 0.5`` after ``k`` spikes: the tie goes to the even count;
    * ``'floor_plus_half'``: ``v_0 = u + 0.5`` is charged in ``u``'s dtype (rounded there, as
      upstream's ``floor(u + 0.5)``), then fire iff ``v_k >= 1``.

    Args:
        u (Tensor): membrane potential, any shape ``S``.
        max_spikes (int): D, the number of virtual steps.
        round_mode (str): One of :data:`ROUND_MODES`. Defaults to ``'half_up'``.

    Returns:
        Tensor: binary spikes of shape ``[D, *S]`` in ``u``'s dtype; their sum over dim 0 equals the
        integer firing.
    """
    if round_mode not in ROUND_MODES:
        raise ValueError(f'round_mode must be one of {ROUND_MODES}, got {round_mode!r}')
    u = u.detach()
    # ``v_k >= 1`` is tested as ``v_k - 0.5 >= 0.5``: ``u - k`` (k spikes fired, k <= u + 0.5) is
    # exact in float64 for every input dtype, float64 included, where ``u + 0.5`` may round.
    if round_mode == 'floor_plus_half':
        r, threshold = (u + 0.5).double(), 1.0  # the sum rounded in u's dtype, as upstream
    else:
        r, threshold = u.double(), 0.5
    odd = torch.zeros_like(r, dtype=torch.bool)
    spikes = []
    for _ in range(max_spikes):
        if round_mode == 'half_even':
            s = (r > threshold) | ((r == threshold) & odd)
        else:
            s = r >= threshold
        r = r - s.double()
        odd = odd ^ s
        spikes.append(s)
    return torch.stack(spikes).to(u.dtype)


class BaseNeuron(ExecutionModeMixin, nn.Module):
    """Base of all mmspike neurons: the multi-step charge / fire / reset loop.

    Subclasses implement :meth:`fire` (membrane potential -> spikes in integer units).

    Args:
        leak (float): Factor on the membrane carried to the next step, in [0, 1]. 0 makes every
            time step independent (no temporal state). Defaults to 0.
        reset (str): ``'soft'`` subtracts the emitted spike count from the membrane, ``'hard'`` sets
            it to 0 where a spike was emitted. Defaults to ``'soft'``.
        detach_reset (bool): Whether the reset term carries no gradient. Defaults to True.
        norm (float): The emitted spikes are divided by ``norm`` (1 keeps raw integers).
            Defaults to 1.
        execution_mode (str, optional): ``'fast'`` or ``'plain'`` (:mod:`..execution`; changed
            later by :func:`~mmspike.models.set_execution_mode`). Defaults to None:
            :func:`~mmspike.models.execution.default_execution_mode`.
    """

    def __init__(self, leak: float = 0.0, reset: str = 'soft', detach_reset: bool = True,
                 norm: float = 1.0, execution_mode: Optional[str] = None) -> None:
        super().__init__()
        self.init_execution_mode(execution_mode)
        # ValueError, not assert: the checks must hold under python -O too
        if isinstance(leak, bool) or not isinstance(leak, (int, float)) or not 0.0 <= leak <= 1.0:
            raise ValueError(f'leak must be a number in [0, 1], got {leak!r}')
        if reset not in ('soft', 'hard'):
            raise ValueError(f"reset must be 'soft' or 'hard', got {reset!r}")
        if not norm > 0:
            raise ValueError(f'norm must be > 0, got {norm!r}')
        self.leak = float(leak)
        self.reset = reset
        self.detach_reset = detach_reset
        self.norm = float(norm)

    #: Whether ``fire`` emits only 0/1 (then a hard reset can be written ``u * (1 - s)``).
    binary_spikes = False
    #: Whether ``forward`` raises on a NaN / +-Inf input current (:func:`set_finite_check`).
    finite_check = True
    #: The neuron's name in its model, for errors (set by :func:`set_finite_check`).
    neuron_name: Optional[str] = None

    def nonfinite_handler(self) -> Optional[Callable[[Tensor, int], None]]:
        """What a fused firing pass calls on non-finite inputs (:func:`kernels.fire_forward`'s
        ``on_nonfinite``): this neuron's error, or None when the check is off (or a tracer or
        compiler runs)."""
        if (not self.finite_check or torch.jit.is_tracing()
                or torch.compiler.is_compiling()):
            return None
        return self._raise_nonfinite

    def check_finite(self, x: Tensor) -> None:
        """Raise ``FloatingPointError`` if ``x`` holds NaN or +-Inf (when :attr:`finite_check`).

        Spikes cannot carry NaN (the fast path stores them as bytes) and clamping would turn
        +-Inf into D or 0 spikes, so a non-finite current is an error, never a spike count. Cost:
        one reduction (:func:`kernels.count_nonfinite`); the fused firing of the fast path counts
        them in its own pass instead (:meth:`nonfinite_handler`).
        """
        handler = self.nonfinite_handler()
        if handler is None or not x.is_floating_point():
            return
        bad = kernels.count_nonfinite(x)
        if bad:
            handler(x, bad)

    def _raise_nonfinite(self, x: Tensor, bad: int) -> None:
        raise FloatingPointError(
            f'{self.neuron_name or type(self).__name__} ({type(self).__name__}): its input '
            f'current of shape {tuple(x.shape)} holds {bad} non-finite values (NaN or +-Inf); '
            f'a non-finite input image or a diverged weight upstream. '
            f'set_finite_check(model, False) turns this check off')

    def fire(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def charge(self, u_prev: Optional[Tensor], s_prev: Optional[Tensor], x: Tensor) -> Tensor:
        if u_prev is None or self.leak == 0.0:
            return x
        s = s_prev.detach() if self.detach_reset else s_prev
        if self.reset == 'soft':
            u_prev = u_prev - s
        elif self.binary_spikes:
            u_prev = u_prev * (1.0 - s)  # keeps the gradient through s when not detached
        else:
            u_prev = u_prev * (s == 0).to(u_prev.dtype)  # a spike of any count resets to 0
        return self.leak * u_prev + x

    def forward(self, x: Tensor) -> Tensor:
        """Args:
            x (Tensor): input current ``[T, ...]`` (at least 2-D; T first).

        Returns:
            Tensor: spikes divided by ``norm``, same shape as ``x``.
        """
        if x.dim() < 2:
            raise ValueError(f'{type(self).__name__} expects a [T, ...] sequence, '
                             f'got shape {tuple(x.shape)}')
        self.check_finite(x)
        if x.shape[0] == 1 or self.leak == 0.0:
            # No temporal state: all steps fire at once (the common T=1 image case).
            s = self.fire(self.charge(None, None, x))
        else:
            u, prev, out = None, None, []
            for t in range(x.shape[0]):
                u = self.charge(u, prev, x[t])
                prev = self.fire(u)
                out.append(prev)
            s = torch.stack(out)
        return s / self.norm if self.norm != 1.0 else s

    def extra_repr(self) -> str:
        return f'leak={self.leak}, reset={self.reset}, norm={self.norm}'


class IntegerNeuron(BaseNeuron):
    """Integer-valued neuron of Spike Firing Approximation (E-SpikeFormer / SpikeYOLO).

    .. math::

        u_t = \\lambda (u_{t-1} - s_{t-1}) + x_t, \\qquad
        s_t = \\mathrm{round}(\\mathrm{clamp}(u_t, 0, D)), \\qquad
        \\mathrm{out}_t = s_t / \\mathrm{norm}

    Backward is straight-through: ``d s / d u = 1`` inside the window (``[0, D]`` closed or
    ``(0, D)`` open) and 0 outside.

    **Spike-driven mode** (:func:`set_spike_driven`): the integer ``s_t`` is emitted as ``D`` binary
    spikes of an IF soft-reset neuron over ``D`` virtual steps (:func:`expand_to_binary`), i.e. a
    ``[T * D, ...]`` binary train with virtual steps innermost (index ``t * D + k``). The synapse of
    the next layer sums them, which is what :meth:`forward` returns, so the downstream result is the
    same in both modes; :attr:`last_binary` keeps the last train and :attr:`binary_spike_count` counts
    every binary spike emitted since the counter was reset, for SOP accounting and checks.

    **Kernel backend**: on the fast path the firing runs on :attr:`kernel_backend` (``'auto'`` or
    a backend of :mod:`.kernels`), state of the neuron set by :func:`set_kernel_backend`.

    Args:
        max_spikes (int): D, the most spikes per step. Defaults to 4.
        norm (float, optional): Output divisor. Defaults to ``max_spikes`` (outputs in [0, 1]);
            1 emits raw integers.
        round_mode (str): How ties round (:func:`round_to_int`): ``'half_up'`` (exact
            ``floor(u + 0.5)``), ``'half_even'`` (``torch.round``: upstream base family and
            SpikeYOLO) or ``'floor_plus_half'`` (``floor(u + 0.5)`` with the addition rounded in
            the working dtype: upstream large family). Defaults to ``'half_up'``.
        grad_window (str): ``'closed'`` passes the gradient on ``0 <= u <= D``, ``'open'`` on
            ``0 < u < D``. Defaults to ``'closed'``.
        leak (float): Membrane leak over real time steps. Defaults to 0.
        reset (str): Defaults to ``'soft'``.
        detach_reset (bool): Defaults to True.
        execution_mode (str, optional): ``'fast'`` or ``'plain'``. Defaults to None (the
            construction default, see :class:`BaseNeuron`).
    """

    def __init__(self, max_spikes: int = 4, norm: Optional[float] = None,
                 round_mode: str = 'half_up', grad_window: str = 'closed', leak: float = 0.0,
                 reset: str = 'soft', detach_reset: bool = True,
                 execution_mode: Optional[str] = None) -> None:
        if isinstance(max_spikes, bool) or not isinstance(max_spikes, int) or max_spikes < 1:
            raise ValueError(f'max_spikes (D) must be an integer >= 1, got {max_spikes!r}')
        if norm is None:
            norm = float(max_spikes)
        if not norm > 0:
            raise ValueError(f'norm must be > 0, got {norm!r}')
        if round_mode not in ROUND_MODES:
            raise ValueError(f'round_mode must be one of {ROUND_MODES}, got {round_mode!r}')
        if grad_window not in GRAD_WINDOWS:
            raise ValueError(f'grad_window must be one of {GRAD_WINDOWS}, got {grad_window!r}')
        super().__init__(leak=leak, reset=reset, detach_reset=detach_reset, norm=norm,
                         execution_mode=execution_mode)
        self.max_spikes = max_spikes
        self.round_mode = round_mode
        self.grad_window = grad_window
        self.spike_driven = False
        self.last_binary: Optional[Tensor] = None
        self.binary_spike_count = 0

    #: Fused-firing kernel backend of the fast path: ``'auto'`` or a name of
    #: :func:`.kernels.backend_names` (:func:`set_kernel_backend`).
    kernel_backend = 'auto'

    def fire(self, u: Tensor) -> Tensor:
        if self.spike_driven:
            return self._fire_binary(u)
        if self.fast_path:
            return fused_fire(u, self.max_spikes, 1.0, ROUND_CODES[self.round_mode],
                              self.grad_window == 'open', self.kernel_backend)
        return plain_fire(u, self.max_spikes, ROUND_CODES[self.round_mode],
                          self.grad_window == 'open')

    def fused_spec(self, x: Tensor) -> Optional[Tuple[int, float, int, bool]]:
        """``(D, norm, rounding code, open_window)`` when this neuron's whole forward on ``x`` is one
        fused firing pass (fast path, no temporal state, not spike-driven, float input of at
        least 2-D); None otherwise.
        """
        if (self.spike_driven or not self.fast_path or x.dim() < 2
                or not x.is_floating_point() or not (x.shape[0] == 1 or self.leak == 0.0)):
            return None
        return (self.max_spikes, self.norm, ROUND_CODES[self.round_mode],
                self.grad_window == 'open')

    def forward(self, x: Tensor) -> Tensor:
        if not self.spike_driven:
            spec = self.fused_spec(x)
            if spec is not None:  # one pass, the division by norm and the check included
                return fused_fire(x, *spec, backend=self.kernel_backend,
                                  on_nonfinite=self.nonfinite_handler())
            return super().forward(x)
        self._trains = []
        out = super().forward(x)
        # One train [D, T, ...] (all steps fired at once) or T trains [D, ...] (temporal loop).
        trains = self._trains
        binary = trains[0].movedim(0, 1) if len(trains) == 1 else torch.stack(trains)
        self.last_binary = binary.flatten(0, 1)  # [T * D, ...], index t * D + k
        del self._trains
        return out

    def _fire_binary(self, u: Tensor) -> Tensor:
        binary = expand_to_binary(u, self.max_spikes, self.round_mode)  # [D, *u.shape]
        self.binary_spike_count += int(binary.sum().item())
        self._trains.append(binary)
        return binary.sum(0)

    def extra_repr(self) -> str:
        return (f'max_spikes={self.max_spikes}, norm={self.norm}, round_mode={self.round_mode}, '
                f'grad_window={self.grad_window}, leak={self.leak}'
                + (', spike_driven=True' if self.spike_driven else ''))


def _sigmoid_surrogate(alpha: float):

    class _HeavisideSigmoid(torch.autograd.Function):
        """Heaviside step forward; derivative of ``sigmoid(alpha * x)`` backward."""

        @staticmethod
        def forward(ctx, x: Tensor) -> Tensor:
            ctx.save_for_backward(x)
            return (x >= 0).to(x.dtype)

        @staticmethod
        def backward(ctx, grad: Tensor):
            (x,) = ctx.saved_tensors
            sg = torch.sigmoid(alpha * x)
            return grad * alpha * sg * (1 - sg)

    return _HeavisideSigmoid


class LIF(BaseNeuron):
    """Multi-step leaky integrate-and-fire neuron (Spikformer, Meta-SpikeFormer).

    .. math::

        h_t = v_{t-1} + (x_t - v_{t-1}) / \\tau, \\qquad
        s_t = \\Theta(h_t - v_{th}), \\qquad
        v_t = h_t (1 - s_t)

    (hard reset to 0, reset detached). Backward uses the sigmoid surrogate
    ``alpha * sig(alpha z) (1 - sig(alpha z))`` with ``z = h - v_th``.

    Args:
        tau (float): Membrane time constant. Defaults to 2.
        v_threshold (float): Firing threshold (0.5 in Spikformer's attention). Defaults to 1.
        alpha (float): Surrogate sharpness. Defaults to 4.
        detach_reset (bool): Defaults to True.
    """

    binary_spikes = True

    def __init__(self, tau: float = 2.0, v_threshold: float = 1.0, alpha: float = 4.0,
                 detach_reset: bool = True) -> None:
        if not tau >= 1.0:
            raise ValueError(f'tau must be >= 1, got {tau!r}')
        if not v_threshold > 0:
            raise ValueError(f'v_threshold must be > 0, got {v_threshold!r}')
        super().__init__(leak=1.0 - 1.0 / tau, reset='hard', detach_reset=detach_reset, norm=1.0)
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.alpha = float(alpha)
        self._heaviside = _sigmoid_surrogate(self.alpha)

    def charge(self, u_prev: Optional[Tensor], s_prev: Optional[Tensor], x: Tensor) -> Tensor:
        x = x / self.tau
        return x if u_prev is None else super().charge(u_prev, s_prev, x)

    def fire(self, u: Tensor) -> Tensor:
        return self._heaviside.apply(u - self.v_threshold)

    def extra_repr(self) -> str:
        return f'tau={self.tau}, v_threshold={self.v_threshold}, alpha={self.alpha}'


def integer_neurons(model: nn.Module) -> Iterator[IntegerNeuron]:
    """All :class:`IntegerNeuron` modules of ``model``."""
    return (m for m in model.modules() if isinstance(m, IntegerNeuron))


def set_finite_check(model: nn.Module, enabled: bool = True) -> int:
    """Turn the non-finite input check of every neuron of ``model`` on (the default) or off, and
    give each neuron its name in ``model`` for the error message.

    Returns:
        int: the number of neurons set.
    """
    n = 0
    for name, m in model.named_modules():
        if isinstance(m, BaseNeuron):
            m.finite_check = bool(enabled)
            m.neuron_name = name or None
            n += 1
    return n


def set_spike_driven(model: nn.Module, enabled: bool = True) -> int:
    """Switch every integer neuron of ``model`` to (or back from) spike-driven binary firing.

    Returns:
        int: the number of neurons switched.
    """
    n = 0
    for m in integer_neurons(model):
        m.spike_driven = enabled
        m.binary_spike_count = 0
        m.last_binary = None
        n += 1
    return n


@contextmanager
def spike_driven(model: nn.Module) -> Iterator[nn.Module]:
    """Context manager: run ``model`` in spike-driven mode, restore each neuron's mode afterwards."""
    with restoring(integer_neurons(model), 'spike_driven'):
        set_spike_driven(model, True)
        yield model


def set_kernel_backend(model: nn.Module, name: str = 'auto') -> int:
    """Set the fused-firing kernel backend of every integer neuron of ``model``: ``'auto'`` (the
    first backend of the table that applies and passes its probe) or a backend name of
    :func:`.kernels.backend_names` (used where it applies; see :mod:`.kernels`).

    Returns:
        int: the number of neurons set.
    """
    kernels.check_backend_name(name)
    n = 0
    for m in integer_neurons(model):
        m.kernel_backend = name
        n += 1
    return n


@contextmanager
def kernel_backend(model: nn.Module, name: str) -> Iterator[nn.Module]:
    """Context manager: run ``model``'s integer neurons on kernel backend ``name`` (None: leave
    them as they are); each neuron gets its own previous backend back afterwards."""
    if name is None:
        yield model
        return
    with restoring(integer_neurons(model), 'kernel_backend'):
        set_kernel_backend(model, name)
        yield model
