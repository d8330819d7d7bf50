"""3-D Grad-CAM (Selvaraju et al., ICCV 2017) for the image learners, and the layer to hook on each.

For the class logit ``y_c`` and the activations ``A`` (B, K, x, y, z) of a target layer,

    w_k = mean over positions of dy_c / dA_k,        cam = ReLU(sum_k w_k A_k).

For a network that ends in global average pooling and one linear layer (a CAM network, Zhou et al. 2016),
``dy_c / dA_k = W[c, k] / (x y z)`` everywhere, so Grad-CAM is the class-activation map divided by the
number of positions.

The activations are captured by a forward hook on the layer and the gradient is taken with
:func:`torch.autograd.grad` with respect to them, so no parameter's ``.grad`` is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gliotype.explain._modes import eval_mode

Forward = Callable[[nn.Module, Tensor], Tensor]


def grad_cam(model: nn.Module, layer: nn.Module, inputs: Tensor, class_index: int | Tensor,
             forward: Forward | None = None) -> Tensor:
    """Grad-CAM of ``class_index`` at ``layer``, one map per input, on the layer's own grid.

    The model runs in eval mode (each module's training flag is restored afterwards) with gradients
    enabled even under ``torch.no_grad()``; the hook is removed even when the forward pass fails.

    Args:
        model: the classifier; ``forward(model, inputs)`` must return logits (B, n_classes).
        layer: a submodule of ``model`` called exactly once per forward pass, with a 5-D output
            (see :func:`default_layer`).
        inputs: a batch of image cubes.
        class_index: the class to explain, one for all inputs or one per input.
        forward: how to get logits from the model; default ``model(inputs)``.

    Returns:
        The non-negative maps, detached; upsample them with :func:`upsample_cam`.

    Shapes:
        - inputs: ``(B, C, X, Y, Z)``
        - class_index: ``int`` or ``(B,)``
        - output: ``(B, x, y, z)``, the spatial shape of ``layer``'s output
    """
    if not isinstance(inputs, Tensor) or inputs.dim() != 5:
        got = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
        raise ValueError(f"grad_cam: inputs must be a tensor of shape (B, C, X, Y, Z); got {got!r}. "
                         "For one cube of shape (C, X, Y, Z) pass cube[None].")
    activations, gradients = _activations_and_gradients(model, layer, inputs, class_index, forward)
    weights = gradients.mean(dim=(2, 3, 4), keepdim=True)
    return torch.relu((weights * activations).sum(dim=1))


def upsample_cam(cam: Tensor, size: int | Sequence[int]) -> Tensor:
    """Trilinear upsampling of Grad-CAM maps to the input grid, each map divided by its maximum.

    The maps are non-negative, so the result lies in [0, 1] with 0 meaning "no evidence"; a map that
    is zero everywhere stays zero. ``align_corners=False`` matches the pooling that shrank the grid.

    Shapes:
        - cam: ``(B, x, y, z)``
        - size: ``int`` or ``(X, Y, Z)``
        - output: ``(B, X, Y, Z)``
    """
    if not isinstance(cam, Tensor) or cam.dim() != 4:
        got = tuple(cam.shape) if isinstance(cam, Tensor) else type(cam).__name__
        raise ValueError(f"upsample_cam: cam must have shape (B, x, y, z), as returned by grad_cam; got {got!r}")
    size = (int(size),) * 3 if isinstance(size, int) else tuple(int(s) for s in size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"upsample_cam: size must be one positive int or three; got {size!r}")
    up = F.interpolate(cam[:, None].float(), size=size, mode="trilinear", align_corners=False)[:, 0]
    peak = up.flatten(1).amax(dim=1).clamp_min(torch.finfo(up.dtype).tiny)
    return up.clamp_min(0) / peak[:, None, None, None]


def default_layer(model: nn.Module) -> nn.Module:
    """The layer whose output Grad-CAM should use: the last rectified feature maps before pooling.

    * anything with a ``last_conv`` attribute (:class:`gliotype.nn.cnn3d.ImageLearner`: the ReLU of the
      fourth conv block, before its max-pool: a grid of 1/8 of the cube, 8^3 for a 64^3 cube);
    * MONAI ``DenseNet``/``DenseNet121``: ``class_layers.relu``, the ReLU applied to ``features.norm5``
      (1/32 of the cube: 2^3 for 64^3) -- MONAI's own Grad-CAM examples use this layer;
    * MONAI ``ResNet``: ``layer4``, the last residual stage (its blocks end with a ReLU).

    Raises:
        ValueError: for any other model, naming the supported ones.
    """
    if isinstance(getattr(model, "last_conv", None), nn.Module):
        return model.last_conv
    from monai.networks.nets import DenseNet, ResNet

    if isinstance(model, DenseNet):
        return model.class_layers.relu
    if isinstance(model, ResNet):
        return model.layer4
    raise ValueError(f"default_layer: no Grad-CAM layer is known for {type(model).__name__!r}; supported are "
                     "models with a `last_conv` attribute (gliotype.nn.cnn3d.ImageLearner), MONAI DenseNet121 "
                     "and MONAI ResNet. Pass the layer yourself: grad_cam(model, model.<your last conv block>, ...)")


def _activations_and_gradients(model: nn.Module, layer: nn.Module, inputs: Tensor, class_index: int | Tensor,
                               forward: Forward | None) -> tuple[Tensor, Tensor]:
    captured: list[Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        with eval_mode(model), torch.enable_grad():
            logits = (forward or _call)(model, inputs.detach().requires_grad_(True))
            index = _class_indices(class_index, logits, inputs.shape[0])
            activations = _single_activation(captured, layer)
            score = logits.gather(1, index[:, None]).sum()
            (gradients,) = torch.autograd.grad(score, activations, allow_unused=True)
    finally:
        handle.remove()
    if gradients is None:
        raise ValueError(f"grad_cam: the logits do not depend on the output of {type(layer).__name__}; "
                         "hook a layer on the path from the input to the logits")
    return activations.detach(), gradients.detach()


def _call(model: nn.Module, inputs: Tensor) -> Tensor:
    return model(inputs)


def _single_activation(captured: list, layer: nn.Module) -> Tensor:
    name = type(layer).__name__
    if len(captured) != 1:
        raise ValueError(f"grad_cam: the target layer ({name}) ran {len(captured)} times in one forward pass; "
                         "it must run exactly once -- is it a submodule of the model, and not shared?")
    out = captured[0]
    if not isinstance(out, Tensor) or out.dim() != 5:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"grad_cam: the target layer ({name}) must output feature maps (B, K, x, y, z); "
                         f"got {got!r}. Hook a convolution block, e.g. default_layer(model).")
    return out


def _class_indices(class_index: int | Tensor, logits: Tensor, batch: int) -> Tensor:
    if logits.dim() != 2 or logits.shape[0] != batch:
        raise ValueError(f"grad_cam: the forward pass must return logits of shape (B, n_classes) = ({batch}, ...); "
                         f"got {tuple(logits.shape)}")
    index = torch.as_tensor(class_index, device=logits.device).long().reshape(-1)
    if index.numel() == 1:
        index = index.expand(batch)
    n_classes = logits.shape[1]
    if index.shape != (batch,) or bool(((index < 0) | (index >= n_classes)).any()):
        raise ValueError(f"grad_cam: class_index must be one int or one per input, in 0..{n_classes - 1}; "
                         f"got {class_index!r} for a batch of {batch}")
    return index
