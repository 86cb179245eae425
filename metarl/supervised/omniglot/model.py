"""The 4-block convolutional network of MAML's Omniglot experiments (docs/tasks.md).

Each block is ``3x3 conv (64 filters, padding 1) -> batch norm -> ReLU -> 2x2 max-pool``; four
blocks take a ``[B, 1, 28, 28]`` image to ``[B, 64, 1, 1]`` (28 -> 14 -> 7 -> 3 -> 1), and a
linear head maps the 64 features to ``ways`` logits.

Batch norm, as in the MAML paper and its reference code: **batch statistics always** (training
and evaluation alike; ``track_running_stats=False``, so there are no running-statistics buffers to
update from inside an adaptation), with a **learnable affine** scale and shift that are
meta-learned and adapted in the inner loop like every other parameter. The consequence is
*transductive* evaluation: each query image is normalised with statistics of the whole query
batch it arrives in (one task's ``N*Q`` queries), so a prediction depends on the other queries of
its episode. This is what the published Omniglot numbers do; evaluate with the same query-set
sizes when comparing.

Two equivalent ways to run the network on many tasks at once, both pure in their parameters:

* ``ConvNet`` under ``torch.func.functional_call`` (for ``metarl.core.maml.adapt`` on one
  task);
* ``grouped_forward``: task-stacked parameters ``{name: [T, ...]}`` and inputs
  ``[T, B, 1, 28, 28]``, with the T tasks' convolutions run as one grouped convolution
  (``groups=T``) and batch norm's per-task statistics as per-channel statistics of the stacked
  channels. See ``metarl.supervised.omniglot.maml`` for which is faster and used.

How many tasks go into one grouped convolution is decided here, once, by ``task_slices``
(used by ``ConvNet.task_forward`` and ``maml.meta_loss``): ``CPU_GROUP_SIZE`` on a CPU,
every task on any other device. Why, in ``maml``'s docstring; the measurements in
docs/results.md (Performance).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.core.maml import Params

IMAGE_SIZE = 28
BN_EPS = 1e-5
#: Tasks per grouped convolution on a CPU (the fastest in ``bench/omniglot.py``; see the docstring).
CPU_GROUP_SIZE = 2


def task_slices(tasks: int, device: torch.device, group_size: int | None = None) -> list[slice]:
    """Slices of a task axis of length ``tasks``, ``group_size`` tasks each (the last may be
    shorter). ``None``: ``CPU_GROUP_SIZE`` on a CPU, all tasks in one group on other devices."""
    if group_size is None:
        group_size = CPU_GROUP_SIZE if device.type == "cpu" else max(tasks, 1)
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1 (or None for the default), got {group_size}")
    return [slice(start, min(start + group_size, tasks)) for start in range(0, tasks, group_size)]


def conv_block(in_channels: int, hidden: int) -> nn.Sequential:
    """``conv3x3 -> BatchNorm2d (batch statistics, learnable affine) -> ReLU -> maxpool2x2``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1),
        nn.BatchNorm2d(hidden, eps=BN_EPS, affine=True, track_running_stats=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class ConvNet(nn.Module):
    """MAML's Omniglot classifier: 4 conv blocks and a linear head.

    Args:
        ways: number of output logits (N of N-way classification).
        in_channels: image channels (1 for Omniglot).
        hidden: filters per conv layer (64 in the paper).
        num_blocks: conv blocks (4 in the paper; 28x28 inputs reach 1x1 after 4).

    ``forward(x [B, in_channels, 28, 28]) -> logits [B, ways]``. Parameter names are
    ``blocks.{i}.0.weight/bias`` (conv), ``blocks.{i}.1.weight/bias`` (batch-norm affine) and
    ``head.weight/bias``; ``grouped_forward`` relies on them.
    """

    def __init__(self, ways: int, *, in_channels: int = 1, hidden: int = 64, num_blocks: int = 4):
        super().__init__()
        if ways < 1:
            raise ValueError(f"ways must be >= 1, got {ways}")
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        self.ways = ways
        self.num_blocks = num_blocks
        self.blocks = nn.Sequential(
            *[conv_block(in_channels if i == 0 else hidden, hidden) for i in range(num_blocks)]
        )
        side = IMAGE_SIZE
        for _ in range(num_blocks):
            side //= 2
        self.head = nn.Linear(hidden * side * side, ways)

    def features(self, x: Tensor) -> Tensor:
        """``[B, C, 28, 28] -> [B, hidden * s * s]``, the input of the linear head."""
        if x.dim() != 4:
            raise ValueError(f"ConvNet expects images [B, C, H, W], got shape {tuple(x.shape)}")
        return self.blocks(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def task_forward(self, params: Params, x: Tensor) -> Tensor:
        """Each task's own parameters on its own images, the supervised trainer's interface.

        ``params``: ``{name: [T, ...]}``; ``x [T, B, 1, 28, 28]`` -> logits ``[T, B, ways]``,
        as grouped convolutions over the task groups of ``task_slices`` (as ``meta_loss``).
        """
        outputs = [grouped_forward({k: v[part] for k, v in params.items()}, x[part],
                                   num_blocks=self.num_blocks)
                   for part in task_slices(x.shape[0], x.device)]
        return torch.cat(outputs)


def grouped_forward(
    params: Params, x: Tensor, *, num_blocks: int = 4, channels_last: bool = True
) -> Tensor:
    """Run T independent ``ConvNet``s, one per task, as grouped convolutions.

    Args:
        params: ``ConvNet`` parameter names, each with a leading task axis ``[T, ...]``.
        x: ``[T, B, C, H, W]``, task t's batch of B images.
        num_blocks: conv blocks of the network the parameters came from.
        channels_last: run in ``torch.channels_last`` layout (oneDNN's faster grouped convs on
            CPU; results equal up to float rounding).

    Returns:
        logits ``[T, B, ways]``; ``out[t]`` equals ``functional_call(net, params[t], x[t])``
        (up to float rounding): the head on ``grouped_features``.
    """
    feats = grouped_features(params, x, num_blocks=num_blocks, channels_last=channels_last)
    return torch.baddbmm(
        params["head.bias"].unsqueeze(1), feats, params["head.weight"].transpose(1, 2)
    )


def grouped_features(
    params: Params, x: Tensor, *, num_blocks: int = 4, channels_last: bool = True
) -> Tensor:
    """The conv blocks of T independent ``ConvNet``s (``grouped_forward``'s arguments; the
    head's parameters are not needed): features ``[T, B, hidden * s * s]``, ``out[t]`` equal to
    ``net.features(x[t])`` with task t's parameters (up to float rounding).

    The T tasks' channels are stacked (``[B, T*C, H, W]``) and each conv uses ``groups=T``;
    batch norm over the stacked channels normalises each task's channels with that task's own
    batch statistics, exactly as ``ConvNet`` does. Max-pool comes before ReLU here:
    ``relu(maxpool(h)) == maxpool(relu(h))`` (both monotone, same gradients), and the ReLU then
    touches a quarter of the values.
    """
    if x.dim() != 5:
        raise ValueError(f"grouped_forward expects inputs [T, B, C, H, W], got {tuple(x.shape)}")
    tasks, batch = x.shape[:2]
    h = x.transpose(0, 1).reshape(batch, tasks * x.shape[2], *x.shape[3:])
    if channels_last:
        h = h.contiguous(memory_format=torch.channels_last)
    for i in range(num_blocks):
        w = params[f"blocks.{i}.0.weight"]  # [T, out, in, 3, 3]
        h = F.conv2d(
            h,
            w.reshape(tasks * w.shape[1], *w.shape[2:]),
            params[f"blocks.{i}.0.bias"].reshape(-1),
            padding=1,
            groups=tasks,
        )
        h = F.batch_norm(
            h,
            None,
            None,
            params[f"blocks.{i}.1.weight"].reshape(-1),
            params[f"blocks.{i}.1.bias"].reshape(-1),
            training=True,
            eps=BN_EPS,
        )
        h = F.relu(F.max_pool2d(h, 2))
    return h.reshape(batch, tasks, -1).transpose(0, 1)  # [T, B, hidden * s * s]
