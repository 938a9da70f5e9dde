"""Building blocks shared by the generator and the discriminators.

Dimension letters: B batch, C channels, H/W height/width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


def conv3x3(in_ch: int, out_ch: int, *, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=bias)


def layout(x: torch.Tensor) -> torch.memory_format:
    """channels_last for a 4-d tensor stored so (and not also contiguous), else contiguous."""
    cl = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if cl and not x.is_contiguous() else torch.contiguous_format


class _GLU(torch.autograd.Function):
    """GLU over dim 1, a * sigmoid(b), whose gradient keeps the input's memory layout.

    The stock GLU backward returns a contiguous gradient for a channels_last input, and
    the batch-norm backward that follows is then about 15x slower (measured on CPU).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        s = torch.sigmoid(b)
        ctx.save_for_backward(x, s)
        return a * s

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, s = ctx.saved_tensors
        return _glu_grad(grad, x, s)


def _glu_grad(grad: torch.Tensor, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The gradient of a * sigmoid(b) for x = [a, b] on dim 1, given s = sigmoid(b), in
    x's memory layout."""
    a = x.chunk(2, dim=1)[0]
    if torch.compiler.is_compiling():  # no out= into strided views there; the compiler fuses
        grad_a = grad * s
        return torch.cat((grad_a, grad_a * a * (1.0 - s)), dim=1)
    grad_x = torch.empty_like(x)
    grad_a, grad_b = grad_x.chunk(2, dim=1)
    torch.mul(grad, s, out=grad_a)  # d/da = s, with s = sigmoid(b)
    torch.mul(grad_a, a, out=grad_b)  # d/db = a * s * (1 - s)
    grad_b.addcmul_(grad_b, s, value=-1.0)
    return grad_x


def glu(x: torch.Tensor) -> torch.Tensor:
    """First half of dim 1 times the sigmoid of the second half (F.glu(x, dim=1))."""
    if x.shape[1] % 2:
        raise ValueError(f"GLU needs an even number of channels, got {x.shape[1]}")
    return _GLU.apply(x)


class _BatchNormGLU(torch.autograd.Function):
    """glu(batch_norm(x)) in training mode that keeps only x and the batch statistics for
    the backward: the normalised tensor and the gate's sigmoid (together 1.5x the input)
    are recomputed there, one element-wise pass, instead of held through the whole step."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum: float, eps: float):
        y, mean, invstd = torch.native_batch_norm(x, weight, bias, running_mean, running_var,
                                                  True, momentum, eps)
        a, b = y.chunk(2, dim=1)
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.eps = eps
        return a * torch.sigmoid(b)  # as glu()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight, bias, mean, invstd = ctx.saved_tensors
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = invstd * weight
        y = x * scale.view(shape)
        y.add_((bias - mean * scale).view(shape))  # the forward's y, to rounding
        # the GLU's gradient written over y (one buffer less than _glu_grad):
        a, b = y.chunk(2, dim=1)
        s = b.sigmoid_()
        grad_a = grad * s  # d/da = s
        b.neg_().add_(1.0).mul_(grad_a).mul_(a)  # d/db = grad * s * (1 - s) * a
        a.copy_(grad_a)
        del grad_a, s
        grad_y = y
        grad_x, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
            grad_y, x, weight, None, None, mean, invstd, True, ctx.eps,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]])
        return grad_x, grad_w, grad_b, None, None, None, None


def bn_glu(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """glu(bn(x)); a training batch norm on the CPU runs fused (_BatchNormGLU), holding a
    third of the memory for the backward. Same outputs and running statistics."""
    fused = (isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.training
             and bn.track_running_stats and bn.affine and x.device.type == "cpu"
             and torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu")
             and not torch.compiler.is_compiling())
    if not fused:
        return glu(bn(x))
    if x.shape[1] % 2:
        raise ValueError(f"GLU needs an even number of channels, got {x.shape[1]}")
    bn.num_batches_tracked.add_(1)  # as nn.BatchNorm's forward does
    momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return _BatchNormGLU.apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                               momentum, bn.eps)


# Nearest x2 up-sampling followed by a 3x3 conv (padding 1) is, for each of the four output
# phases (row parity a, column parity b), a 2x2 conv at the input resolution: rows of parity
# 0 read input rows (i-1, i) with kernel rows (0, 1+2); parity 1 reads (i, i+1) with (0+1, 2).
# Same function, 4 instead of 9 multiply-adds per output pixel, no up-sampled copy.
# Below this many input pixels (batch x H x W) building the phase kernels costs more than
# the multiply-adds it saves (measured: the 4 px and 8 px layers of the initial stage).
PHASE_MIN_PIXELS = 256


def _phase_taps(w: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3-tap axis `dim` of w folded to 2 taps for output parity 0 and for parity 1."""
    k0, k1, k2 = w.unbind(dim)
    return torch.stack((k0, k1 + k2), dim), torch.stack((k0 + k1, k2), dim)


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """(O, I, 3, 3) -> (4*O, I, 2, 2): the 2x2 kernels of output phases (0,0), (0,1), (1,0), (1,1)."""
    phases = [k for rows in _phase_taps(weight, 2) for k in _phase_taps(rows, 3)]
    return torch.cat(phases, 0).contiguous(memory_format=layout(weight))  # CL weight: CL output


class _InterleavePhases(torch.autograd.Function):
    """(B, 4*C, H+1, W+1) phase maps, phase (a, b) valid at rows a..a+H-1 and columns
    b..b+W-1 -> (B, C, 2H, 2W) with out[..., 2i+a, 2j+b] = phase(a, b)[..., i, j]."""

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        n, c4, h1, w1 = y.shape
        c, h, w = c4 // 4, h1 - 1, w1 - 1
        fmt = layout(y)
        out = torch.empty((n, c, 2 * h, 2 * w), dtype=y.dtype, device=y.device, memory_format=fmt)
        o6, y6 = out.view(n, c, h, 2, w, 2), y.unflatten(1, (2, 2, c))  # splits: always views
        for a in (0, 1):
            for b in (0, 1):
                o6[:, :, :, a, :, b].copy_(y6[:, a, b, :, a:a + h, b:b + w])
        ctx.shape, ctx.fmt = y.shape, fmt
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        n, c4, h1, w1 = ctx.shape
        c, h, w = c4 // 4, h1 - 1, w1 - 1
        grad_y = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=ctx.fmt)
        g6, gy6 = grad.view(n, c, h, 2, w, 2), grad_y.unflatten(1, (2, 2, c))
        for a in (0, 1):
            for b in (0, 1):
                gy6[:, a, b, :, a:a + h, b:b + w].copy_(g6[:, :, :, a, :, b])
                gy6[:, a, b, :, h if a == 0 else 0, :].zero_()  # the row and column no
                gy6[:, a, b, :, :, w if b == 0 else 0].zero_()  # output pixel reads
        return grad_y


def upsample_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv2d(interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1), (B, C, H, W)
    -> (B, O, 2H, 2W), computed as four 2x2 convs at the input resolution (one conv call) once
    x has PHASE_MIN_PIXELS input pixels, else as written."""
    if x.shape[0] * x.shape[2] * x.shape[3] < PHASE_MIN_PIXELS:
        return F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), weight, bias, padding=1)
    return _InterleavePhases.apply(_phase_conv(x, weight, bias))


def _phase_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The four output phases' 2x2 convs as one conv: (B, C, H, W) -> (B, 4*O, H+1, W+1)."""
    return F.conv2d(x, phase_kernels(weight), None if bias is None else bias.repeat(4), padding=1)


def upsample_conv3x3_glu(x: torch.Tensor, weight: torch.Tensor,
                         bias: torch.Tensor | None) -> torch.Tensor:
    """glu(upsample_conv3x3(x, weight, bias)), without a graph: the GLU runs on the phase
    maps before they are interleaved, so the full-size output of the conv (twice the
    channels of the result) is never made. The same values to rounding (the sigmoid of a
    strided half may round a last bit apart)."""
    if x.shape[0] * x.shape[2] * x.shape[3] < PHASE_MIN_PIXELS:
        return glu(upsample_conv3x3(x, weight, bias))
    y = _phase_conv(x, weight, bias)
    n, c8, h1, w1 = y.shape
    if c8 % 8:
        raise ValueError(f"GLU needs an even number of channels, got {c8 // 4}")
    gated = torch.empty((n, c8 // 2, h1, w1), dtype=y.dtype, device=y.device,
                        memory_format=layout(y))
    halves, out = y.unflatten(1, (4, 2, c8 // 8)), gated.unflatten(1, (4, c8 // 8))
    torch.sigmoid(halves[:, :, 1], out=out)
    out.mul_(halves[:, :, 0])  # per phase: first half times the sigmoid of the second
    del y, halves
    return _InterleavePhases.apply(gated)


class UpBlock(nn.Module):
    """Nearest x2 up-sampling, 3x3 conv, batch norm, GLU: (B, in_ch, H, W) -> (B, out_ch, 2H, 2W).

    The up-sampling and the conv run fused (`upsample_conv3x3`); `conv` holds the 3x3 weight.
    """

    def __init__(self, *, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = conv3x3(in_ch, out_ch * 2)  # GLU halves the channels
        self.bn = nn.BatchNorm2d(out_ch * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        graph = torch.is_grad_enabled() and (x.requires_grad or self.conv.weight.requires_grad)
        # folded, for inference (not under the compiler: no out= into strided views there)
        if isinstance(self.bn, nn.Identity) and not graph and not torch.compiler.is_compiling():
            return upsample_conv3x3_glu(x, self.conv.weight, self.conv.bias)
        return bn_glu(self.bn, upsample_conv3x3(x, self.conv.weight, self.conv.bias))


class ResBlock(nn.Module):
    """x + BN(conv(GLU(BN(conv(x))))), channels kept."""

    def __init__(self, *, channels: int):
        super().__init__()
        self.conv1 = conv3x3(channels, channels * 2)
        self.bn1 = nn.BatchNorm2d(channels * 2)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = bn_glu(self.bn1, self.conv1(x))
        return x + self.bn2(self.conv2(out))


def _l2_normalize(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    # The released spectral norm divides by (norm + eps), not max(norm, eps).
    return v / (v.norm() + eps)


class SNConv2d(nn.Module):
    """A conv whose weight is divided by its largest singular value, estimated by power iteration.

    Released semantics: one power iteration on *every* forward, in train and eval
    mode alike, updating the stored `u` (out_ch,) and `v` (in_ch*k*k,) vectors;
    sigma = u . (W v) carries the gradient to W, with u and v held constant.
    """

    def __init__(self, *, in_ch: int, out_ch: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        nn.init.orthogonal_(self.weight)
        width = in_ch * kernel_size * kernel_size
        self.register_buffer("u", _l2_normalize(torch.randn(out_ch)))
        self.register_buffer("v", _l2_normalize(torch.randn(width)))

    def _matrix(self):
        """W as an (out, in*k*k) matrix without copying it, and the map of a vector in that
        matrix's column order back to the released (in, k, k) order of `v`. A channels_last
        weight is read in its (out, k, k, in) order: reshaping it the released way would
        copy the whole weight on every forward (33 MB for the bird D's largest conv)."""
        w = self.weight
        o, i, kh, kw = w.shape
        if w.is_contiguous() or not w.is_contiguous(memory_format=torch.channels_last):
            return w.reshape(o, -1), lambda v: v
        return (w.permute(0, 2, 3, 1).reshape(o, -1),
                lambda v: v.view(kh, kw, i).permute(2, 0, 1).reshape(-1))

    def sigma(self) -> torch.Tensor:
        """One power iteration (updating u, v), then the estimate u . (W v), differentiable in W."""
        w, released_order = self._matrix()
        with torch.no_grad():
            v = _l2_normalize(w.t().mv(self.u))
            u = _l2_normalize(w.mv(v))
            # Copy into the buffers; the fresh u, v (not the buffers) enter the graph, so a
            # later forward's update cannot invalidate a pending backward.
            self.u.copy_(u)
            self.v.copy_(released_order(v))
        return torch.dot(u, w.mv(v))

    def normalized_weight(self) -> torch.Tensor:
        return self.weight / self.sigma()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sigma = self.sigma()
        k = self.weight.shape[-1]
        side = [(n + 2 * self.padding - k) // self.stride + 1 for n in x.shape[-2:]]
        if x.shape[0] * self.weight.shape[0] * side[0] * side[1] >= self.weight.numel():
            return F.conv2d(x, self.weight / sigma, self.bias, self.stride, self.padding)
        # conv(x, W / sigma) = conv(x, W) / sigma: deep layers have far fewer outputs than
        # weights, so divide the outputs there.
        out = F.conv2d(x, self.weight, None, self.stride, self.padding) / sigma
        return out + self.bias.view(1, -1, 1, 1)


def init_released(module: nn.Module) -> None:
    """The released initialisation: orthogonal convs and linears, BN gamma ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.orthogonal_(m.weight, 1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
